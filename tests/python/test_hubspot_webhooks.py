"""Webhooks the sandbox sends verify with HubSpot's own client's signature utility."""

import http.server
import json
import threading
import urllib.request

from hubspot.utils.signature import Signature

from conftest import APP_SECRET, INTEGRATION_TOKEN


def test_v3_signatures_verify_with_hubspots_own_utility(sandbox):
    received = []
    done = threading.Event()

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()
            done.set()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/hubspot?portal=1"
    try:
        sandbox.control("PUT", "/webhooks", {"target_url": url, "app_secret": APP_SECRET})
        req = urllib.request.Request(
            f"{sandbox.url}/crm/v3/objects/contacts",
            data=json.dumps({"properties": {"email": "signed@py.example"}}).encode(),
            method="POST",
            headers={"content-type": "application/json", "authorization": f"Bearer {INTEGRATION_TOKEN}"},
        )
        urllib.request.urlopen(req, timeout=10).read()
        assert done.wait(10), "no webhook arrived"
    finally:
        sandbox.control("PUT", "/webhooks", {"target_url": None})
        server.shutdown()
    headers, body = received[0]
    headers = {k.lower(): v for k, v in headers.items()}
    assert Signature.is_valid(
        signature=headers["x-hubspot-signature-v3"],
        client_secret=APP_SECRET,
        request_body=body.decode(),
        http_uri=url,
        http_method="POST",
        signature_version="v3",
        timestamp=headers["x-hubspot-request-timestamp"],
    )
    assert not Signature.is_valid(
        signature=headers["x-hubspot-signature-v3"],
        client_secret="another-secret",
        request_body=body.decode(),
        http_uri=url,
        http_method="POST",
        signature_version="v3",
        timestamp=headers["x-hubspot-request-timestamp"],
    )
    assert json.loads(body)[0]["subscriptionType"] == "contact.creation"
