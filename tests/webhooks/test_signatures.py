"""Receipts refused: unsigned, badly signed, altered, stale, or with no key to check."""

import base64
import json
import logging
import time

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests import processes
from tests.conftest import TEST_SECRET
from tests.webhooks.conftest import (
    DELIVERED_AT,
    MESSAGE_ID,
    PHONE,
    SENDER,
    URL,
    event,
    public_text,
    signed,
)


def assert_refused(response, before, message):
    assert response.status_code == 403
    assert response.is_json
    assert response.json["error"] == "Forbidden"
    assert response.json["message"].startswith("The receipt is refused: ")
    assert message() == before


def test_a_tampered_body_is_refused(post, key, message):
    body = json.dumps(event("delivered", DELIVERED_AT)).encode()
    headers = signed(body, key)
    before = message()
    tampered = body.replace(b'"delivered"', b'"delivery_failed"')
    assert_refused(post(tampered, headers=headers), before, message)


@pytest.mark.parametrize(
    "keep",
    [(), ("telnyx-timestamp",), ("telnyx-signature-ed25519",)],
    ids=["unsigned", "timestamp-only", "signature-only"],
)
def test_an_unsigned_receipt_is_refused(post, key, message, keep):
    body = json.dumps(event("delivered", DELIVERED_AT)).encode()
    headers = {name: value for name, value in signed(body, key).items() if name in keep}
    before = message()
    assert_refused(post(body, headers=headers), before, message)


@pytest.mark.parametrize(
    "garble",
    [
        {"telnyx-signature-ed25519": "not base64!"},
        {"telnyx-signature-ed25519": base64.b64encode(b"short").decode()},
        {"telnyx-timestamp": "12.5"},
        {"telnyx-timestamp": "-1"},
        {"telnyx-timestamp": "9" * 40},
        {"telnyx-timestamp": "١٢٣"},  # digits, but not ASCII ones
    ],
)
def test_garbled_headers_are_refused(post, key, message, garble):
    body = json.dumps(event("delivered", DELIVERED_AT)).encode()
    before = message()
    assert_refused(post(body, headers={**signed(body, key), **garble}), before, message)


def test_another_keys_signature_is_refused(post, message):
    before = message()
    response = post(event("delivered", DELIVERED_AT), signer=Ed25519PrivateKey.generate())
    assert_refused(response, before, message)


@pytest.mark.parametrize("offset", [-301, 301, -86_400 * 365])
def test_a_stale_or_future_signature_is_refused(post, message, offset):
    before = message()
    response = post(event("delivered", DELIVERED_AT), timestamp=int(time.time()) + offset)
    assert_refused(response, before, message)
    assert "more than 300 seconds" in response.json["message"]


def test_without_a_public_key_every_receipt_is_refused(make_app, db_url, key, message):
    # A malformed key stops the web process at start (tests/test_config.py).
    client = make_app(db_url, TELNYX_PUBLIC_KEY="").test_client()
    body = json.dumps(event("delivered", DELIVERED_AT)).encode()
    before = message()
    assert_refused(client.post(URL, data=body, headers=signed(body, key)), before, message)


def test_only_post_and_json_errors(client):
    response = client.get(URL)
    assert response.status_code == 405
    assert response.is_json
    assert client.post("/webhooks/other").json["error"] == "Not Found"


def test_one_log_line_per_receipt_without_the_numbers(post, message, caplog):
    caplog.set_level(logging.INFO, logger="webapp.webhooks")
    post(event("delivered", DELIVERED_AT))
    post(event("delivered", DELIVERED_AT), signer=Ed25519PrivateKey.generate())
    lines = [record.getMessage() for record in caplog.records if record.name == "webapp.webhooks"]
    assert len(lines) == 2
    assert MESSAGE_ID in lines[0] and "job 101" in lines[0] and "updated" in lines[0]
    assert "refused" in lines[1]
    for text in (PHONE, PHONE[1:], SENDER[1:], "271828"):
        assert not any(text in line for line in lines)


@pytest.mark.e2e
def test_a_signed_receipt_through_gunicorn(db_url, key, message, tmp_path):
    port = processes.free_port()
    settings = {"DATABASE_URL": db_url, "SECRET_KEY": TEST_SECRET, "PORT": str(port)}
    settings |= {"WEB_CONCURRENCY": "1", "TELNYX_PUBLIC_KEY": public_text(key)}
    web = processes.start_web(processes.process_env(**settings), tmp_path / "web.log")
    try:
        base = f"http://127.0.0.1:{port}"
        processes.wait_for(f"{base}/healthz")
        body = json.dumps(event("delivered", DELIVERED_AT)).encode()
        unsigned = requests.post(f"{base}{URL}", data=body, timeout=10)
        assert unsigned.status_code == 403
        assert unsigned.json()["error"] == "Forbidden"
        assert message()["status"] == "queued"

        answer = requests.post(f"{base}{URL}", data=body, headers=signed(body, key), timeout=10)
        assert (answer.status_code, answer.json()) == (
            200,
            {"result": "updated", "status": "delivered"},
        )
        assert (message()["status"], message()["status_at"]) == ("delivered", DELIVERED_AT)
    finally:
        processes.stop(web)
    log = (tmp_path / "web.log").read_text()
    assert f"telnyx receipt message.finalized for {MESSAGE_ID} (job 101)" in log
    assert PHONE[2:] not in log and "Traceback" not in log
