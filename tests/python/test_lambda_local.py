"""The three real Lambda binaries under cargo-lambda's local Lambda runtime emulator,
invoked with the real event JSON of their triggers, against moto's server (DynamoDB,
SQS, Secrets Manager) and the CRM sandboxes; the assertions are on the effects."""

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import boto3
import pytest
from cfnlint.decode import cfn_yaml

from conftest import APP_SECRET, INTEGRATION_TOKEN, ROOT, SF_TOKEN, Sandbox

CARGO_LAMBDA_BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
PUBLIC_URL = "https://abc123.execute-api.us-east-1.amazonaws.com"
ORG_ID = "00D8M0000000001AAA"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def moto_url():
    url = os.environ.get("CRMSYNC_MOTO_URL")
    if url:
        yield url
        return
    port = free_port()
    process = subprocess.Popen([str(CARGO_LAMBDA_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield url
    process.terminate()


def aws(service, moto_url):
    return boto3.client(service, endpoint_url=moto_url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


class Deployment:
    """What `sam deploy` would create, made in moto: the table, the queue and its DLQ,
    the credentials secret; and the functions served by `cargo lambda watch`."""

    def __init__(self, moto_url, sandbox):
        self.moto_url = moto_url
        suffix = uuid.uuid4().hex[:8]
        self.table = f"crmsync-state-{suffix}"
        ddb = aws("dynamodb", moto_url)
        # The table as the template defines it (the key types the store writes).
        table = cfn_yaml.load(str(ROOT / "infra" / "template.yaml"))["Resources"]["StateTable"]["Properties"]
        ddb.create_table(
            TableName=self.table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=table["AttributeDefinitions"],
            KeySchema=table["KeySchema"],
            GlobalSecondaryIndexes=table["GlobalSecondaryIndexes"],
        )
        self.sqs = aws("sqs", moto_url)
        self.queue_url = self.sqs.create_queue(QueueName=f"crmsync-work-{suffix}")["QueueUrl"]
        secret = aws("secretsmanager", moto_url).create_secret(
            Name=f"crmsync-{suffix}",
            SecretString=json.dumps({
                "CRMSYNC_HUBSPOT_TOKEN": INTEGRATION_TOKEN,
                "CRMSYNC_HUBSPOT_APP_SECRET": APP_SECRET,
                "CRMSYNC_SALESFORCE_TOKEN": SF_TOKEN,
                "CRMSYNC_SALESFORCE_OUTBOUND_TOKEN": "outbound-token",
                "CRMSYNC_API_KEY": "api-key",
            }),
        )
        env = {
            # No CRM secret in the environment: they come from Secrets Manager.
            "CRMSYNC_SECRET_ARN": secret["ARN"],
            "CRMSYNC_TABLE": self.table,
            "CRMSYNC_QUEUE_URL": self.queue_url,
            "CRMSYNC_HUBSPOT_URL": sandbox.url,
            "CRMSYNC_SALESFORCE_URL": sandbox.salesforce_url,
            "CRMSYNC_SALESFORCE_ORG_ID": ORG_ID,
            "CRMSYNC_PUBLIC_URL": PUBLIC_URL,
            "CRMSYNC_AWS_ENDPOINT": moto_url,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
        }
        self.port = free_port()
        self.output = ROOT / "target" / f"lambda-watch-{suffix}.log"
        self.env = dict(os.environ, PATH=f"{CARGO_LAMBDA_BIN}:{os.environ['PATH']}", **env)
        self.watch = subprocess.Popen(
            ["cargo", "lambda", "watch", "--ignore-changes", "-A", "127.0.0.1", "-P", str(self.port)],
            cwd=ROOT, env=self.env, stdout=open(self.output, "w"), stderr=subprocess.STDOUT,
        )
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)

    def invoke(self, function, event):
        path = ROOT / "target" / f"event-{function}-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps(event))
        result = subprocess.run(
            ["cargo", "lambda", "invoke", function, "-A", "127.0.0.1", "-P", str(self.port),
             "--data-file", str(path), "--output-format", "json"],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=900,
        )
        path.unlink()
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)

    def queued(self):
        """Takes every message off the queue."""
        messages = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                             VisibilityTimeout=30).get("Messages", [])
            if not batch:
                return messages
            for m in batch:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
            messages.extend(batch)

    def stop(self):
        self.watch.terminate()
        try:
            self.watch.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.watch.kill()


@pytest.fixture(scope="module")
def deployment(moto_url):
    sandbox = Sandbox("--search-lag-ms", "0", "--no-limits")
    d = Deployment(moto_url, sandbox)
    d.sandbox = sandbox
    yield d
    d.stop()
    sandbox.stop()


def scheduled_event():
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-23T10:00:00Z",
        "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/crmsync-poll"],
        "detail": {},
    }


def http_event(method, path, body, headers):
    return {
        "version": "2.0", "routeKey": f"{method} {path}", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json", **headers},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "54.0.0.1",
                     "userAgent": "HubSpot Connect 2.0"},
            "requestId": str(uuid.uuid4()), "routeKey": f"{method} {path}", "stage": "$default",
            "time": "23/Nov/2026:10:00:00 +0000", "timeEpoch": int(time.time() * 1000),
        },
        "body": body, "isBase64Encoded": False,
    }


def sqs_event(bodies):
    return {"Records": [{
        "messageId": str(uuid.uuid4()), "receiptHandle": "handle", "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000",
                       "SenderId": "AIDA", "ApproximateFirstReceiveTimestamp": "1700000000000"},
        "messageAttributes": {}, "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:crmsync-work",
        "awsRegion": "us-east-1",
    } for body in bodies]}


def test_the_poller_queues_changes_on_sqs(deployment):
    sandbox = deployment.sandbox
    sandbox.control("POST", "/objects/contacts", {"properties": {"email": "polled@example.org", "lastname": "Polled"}})
    report = deployment.invoke("poller", scheduled_event())
    assert report["feeds"]["hubspot:contacts"]["enqueued"] >= 1, report
    bodies = [json.loads(m["Body"]) for m in deployment.queued()]
    assert any(b["side"] == "hubspot" and b["object"] == "contacts" for b in bodies), bodies
    # Metrics in Embedded Metric Format, one JSON line the log pipeline turns into metrics.
    metrics = [json.loads(line[line.index("{"):]) for line in deployment.output.read_text().splitlines()
               if '"CloudWatchMetrics"' in line]
    poller = [m for m in metrics if m.get("Function") == "poller"]
    assert poller and poller[-1]["RecordsQueued"] >= 1, metrics
    assert poller[-1]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "crmsync"


def test_the_intake_verifies_and_queues_a_hubspot_webhook(deployment):
    body = json.dumps([{"eventId": 4242, "subscriptionType": "contact.creation", "objectId": 99,
                        "occurredAt": int(time.time() * 1000)}])
    ts = str(int(time.time() * 1000))
    uri = f"{PUBLIC_URL}/webhooks/hubspot"
    signature = base64.b64encode(hmac.new(APP_SECRET.encode(), f"POST{uri}{body}{ts}".encode(),
                                          hashlib.sha256).digest()).decode()
    deployment.queued()
    forged = deployment.invoke("intake", http_event("POST", "/webhooks/hubspot", body, {
        "x-hubspot-signature-v3": "AAAA" + signature[4:], "x-hubspot-request-timestamp": ts}))
    assert forged["statusCode"] == 401
    assert deployment.queued() == []
    answer = deployment.invoke("intake", http_event("POST", "/webhooks/hubspot", body, {
        "x-hubspot-signature-v3": signature, "x-hubspot-request-timestamp": ts}))
    assert answer["statusCode"] == 200, answer
    bodies = [json.loads(m["Body"]) for m in deployment.queued()]
    # The event's creation rides along, for the worker to recognise our own writes.
    assert bodies == [{"side": "hubspot", "object": "contacts", "id": "99", "origin": "webhook",
                       "seen": {"kind": "created"}}]


def test_the_worker_syncs_a_batch_and_reports_partial_failures(deployment):
    sandbox = deployment.sandbox
    created = sandbox.control("POST", "/objects/contacts",
                              {"properties": {"email": "worker@example.org", "lastname": "Worker"}})
    good = json.dumps({"side": "hubspot", "object": "contacts", "id": created["id"], "origin": "webhook"})
    answer = deployment.invoke("worker", sqs_event([good, "not a reference"]))
    failures = answer["batchItemFailures"]
    assert len(failures) == 1, answer  # the malformed message only
    leads = sandbox.control("GET", "/objects/Lead", crm="salesforce")["records"]
    assert [l["Email"] for l in leads if l["Email"] == "worker@example.org"] == ["worker@example.org"]
    metrics = [json.loads(line[line.index("{"):]) for line in deployment.output.read_text().splitlines()
               if '"CloudWatchMetrics"' in line]
    worker = [m for m in metrics if m.get("Function") == "worker"][-1]
    assert (worker["RecordsSynced"], worker["MalformedMessages"]) == (1, 1), worker


def test_no_secret_reaches_the_logs(deployment):
    log = deployment.output.read_text()
    assert '"message":"synced"' in log.replace(" ", ""), "the functions logged"
    for secret in (INTEGRATION_TOKEN, APP_SECRET, SF_TOKEN, "outbound-token", "api-key"):
        assert secret not in log


def set_paused(deployment, paused):
    """What `crmsync pause --aws` writes: the controls item of the state table."""
    ddb = aws("dynamodb", deployment.moto_url)
    key = {"pk": {"S": "control"}, "sk": {"S": "_"}}
    current = ddb.get_item(TableName=deployment.table, Key=key, ConsistentRead=True).get("Item")
    version = int(current["v"]["N"]) if current else 0
    controls = {"paused": {"since": int(time.time() * 1000), "by": "test"}} if paused else {}
    ddb.put_item(TableName=deployment.table, Item={**key, "data": {"S": json.dumps(controls)},
                                                    "v": {"N": str(version + 1)}})


def test_a_paused_worker_parks_its_batch_and_loses_nothing(deployment):
    sandbox = deployment.sandbox
    created = sandbox.control("POST", "/objects/contacts",
                              {"properties": {"email": "parked@example.org", "lastname": "Parked"}})
    body = json.dumps({"side": "hubspot", "object": "contacts", "id": created["id"], "origin": "webhook"})
    deployment.queued()
    set_paused(deployment, True)
    try:
        answer = deployment.invoke("worker", sqs_event([body]))
        # Acknowledged (nothing counts towards the dead letters), and queued again for later.
        assert answer["batchItemFailures"] == [], answer
        attrs = deployment.sqs.get_queue_attributes(
            QueueUrl=deployment.queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
        assert int(attrs["Attributes"]["ApproximateNumberOfMessagesDelayed"]) == 1, attrs
        leads = sandbox.control("GET", "/objects/Lead", crm="salesforce")["records"]
        assert not [l for l in leads if l["Email"] == "parked@example.org"], "nothing synced while paused"
    finally:
        set_paused(deployment, False)
    answer = deployment.invoke("worker", sqs_event([body]))
    assert answer["batchItemFailures"] == [], answer
    leads = sandbox.control("GET", "/objects/Lead", crm="salesforce")["records"]
    assert [l["Email"] for l in leads if l["Email"] == "parked@example.org"] == ["parked@example.org"]


def test_the_intake_serves_the_dashboard_behind_the_key(deployment):
    refused = deployment.invoke("intake", http_event("GET", "/dashboard", None, {}))
    assert refused["statusCode"] == 401
    assert "basic" in refused["headers"]["www-authenticate"].lower(), refused
    page = deployment.invoke("intake", http_event("GET", "/dashboard", None,
                                                  {"authorization": "Bearer api-key"}))
    assert page["statusCode"] == 200, page
    assert page["headers"]["content-type"].startswith("text/html")
    assert "crmsync sync health" in page["body"] and 'id="records"' in page["body"]
