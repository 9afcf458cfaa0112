"""Measures the cold start of the three function binaries (see cold-start.sh)."""

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "target" / "release"
FUNCTIONS = ["poller", "intake", "worker"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def main():
    moto_port = free_port()
    moto = subprocess.Popen([str(ROOT / ".venv" / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sandbox = subprocess.Popen([str(RELEASE / "crmsync-sandbox"), "--records", "100"],
                               stdout=subprocess.PIPE, text=True)
    try:
        hubspot = sandbox.stdout.readline().split()[1]
        salesforce = sandbox.stdout.readline().split()[1]
        wait_for(moto_port)
        moto_url = f"http://127.0.0.1:{moto_port}"
        creds = dict(endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="test",
                     aws_secret_access_key="test")
        secret = boto3.client("secretsmanager", **creds).create_secret(
            Name=f"crmsync-{uuid.uuid4().hex[:6]}",
            SecretString=json.dumps({"CRMSYNC_HUBSPOT_TOKEN": "hubspot-integration-token",
                                     "CRMSYNC_SALESFORCE_TOKEN": "salesforce-integration-token"}))
        queue = boto3.client("sqs", **creds).create_queue(QueueName="crmsync-cold")["QueueUrl"]
        env = dict(os.environ, CRMSYNC_SECRET_ARN=secret["ARN"], CRMSYNC_TABLE="crmsync-cold",
                   CRMSYNC_QUEUE_URL=queue, CRMSYNC_HUBSPOT_URL=hubspot, CRMSYNC_SALESFORCE_URL=salesforce,
                   CRMSYNC_AWS_ENDPOINT=moto_url, AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="test",
                   AWS_SECRET_ACCESS_KEY="test", AWS_LAMBDA_FUNCTION_NAME="cold",
                   AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256", AWS_LAMBDA_FUNCTION_VERSION="1",
                   # No runtime API listens here: the binary starts, initializes, logs its
                   # init time, then fails to fetch an event and exits.
                   AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{free_port()}")
        print(f"{'function':<8} {'release (host)':>16} {'arm64 bootstrap':>16} {'init':>9} {'process':>9}")
        for name in FUNCTIONS:
            binary = RELEASE / name
            arm = ROOT / ".aws-sam" / "build" / f"{name.capitalize()}Function" / "bootstrap"
            started = time.monotonic()
            run = subprocess.run([str(binary)], env=env, capture_output=True, text=True, timeout=60)
            wall_ms = (time.monotonic() - started) * 1000
            init = [json.loads(l) for l in run.stdout.splitlines() if '"cold start"' in l]
            init_ms = init[0]["fields"]["init_ms"] if init else float("nan")
            arm_size = f"{arm.stat().st_size:,}" if arm.exists() else "-"
            print(f"{name:<8} {binary.stat().st_size:>16,} {arm_size:>16} {init_ms:>7.1f}ms {wall_ms:>7.0f}ms")
    finally:
        sandbox.terminate()
        moto.terminate()


if __name__ == "__main__":
    sys.exit(main())
