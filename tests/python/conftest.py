"""Starts the real `crmsync-sandbox` binary on loopback for the Python-side tests."""

import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("CRMSYNC_SANDBOX", ROOT / "target" / "debug" / "crmsync-sandbox"))

INTEGRATION_TOKEN = "py-integration-token"
SF_TOKEN = "py-sf-integration-token"
HUMAN_TOKEN = "py-human-token"
APP_SECRET = "py-app-secret"


def http(base, method, path, body=None, token=None, form=None):
    """One call: status, headers and the parsed body (None when empty, the text when it
    is not JSON). `form` sends a form-encoded body instead of JSON."""
    headers = {}
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    if token:
        headers["authorization"] = f"Bearer {token}"
    r = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            status, head, text = resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, head, text = e.code, e.headers, e.read().decode()
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text
    return status, head, parsed


class Sandbox:
    def __init__(self, *extra):
        args = [
            str(BINARY),
            "--hubspot-addr", "127.0.0.1:0",
            "--seed", "4",
            "--records", "300",
            "--hubspot-token", INTEGRATION_TOKEN,
            "--hubspot-token", HUMAN_TOKEN,
            "--hubspot-app-secret", APP_SECRET,
            "--salesforce-token", SF_TOKEN,
            *extra,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline().strip()
        if not line.startswith("hubspot "):
            self.process.kill()
            raise RuntimeError(f"sandbox did not start: {line!r} {self.process.stderr.read()}")
        self.url = line.split(" ", 1)[1]
        line = self.process.stdout.readline().strip()
        if not line.startswith("salesforce "):
            self.process.kill()
            raise RuntimeError(f"sandbox did not start Salesforce: {line!r}")
        self.salesforce_url = line.split(" ", 1)[1]

    def control(self, method, path, body=None, crm="hubspot"):
        base = self.url if crm == "hubspot" else self.salesforce_url
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{base}/_sandbox/{crm}{path}", data=data, method=method,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read().decode()
            return json.loads(text) if text else None

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def sandbox():
    s = Sandbox("--no-limits", "--search-lag-ms", "0", "--perfect-webhooks")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def strict_sandbox():
    """Limits on, a tiny burst, so 429s are reachable."""
    s = Sandbox("--hubspot-burst", "3", "--search-lag-ms", "0")
    yield s
    s.stop()
