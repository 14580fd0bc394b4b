"""POST /webhooks/telnyx: Telnyx's delivery receipts, signed with a test Ed25519 key."""

import base64
import datetime
import json
import logging
import time
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from webapp import webhooks

URL = "/webhooks/telnyx"
MESSAGE_ID = "40385f64-5717-4562-b3fc-2c963f66afa6"
PHONE = "+14155550123"
SENDER = "+18445550001"
NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
SENT_AT = NOW - datetime.timedelta(minutes=2)
DELIVERED_AT = NOW - datetime.timedelta(minutes=1)


def public_text(key: Ed25519PrivateKey) -> str:
    """The key as TELNYX_PUBLIC_KEY holds it: base64 of the 32 raw bytes."""
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def event(status="sent", occurred_at=SENT_AT, event_type=None, message_id=MESSAGE_ID, errors=()):
    """A message event shaped as Telnyx sends it (numbers and text included)."""
    final = status not in ("queued", "sending", "sent")
    return {
        "data": {
            "event_type": event_type or ("message.finalized" if final else "message.sent"),
            "id": str(uuid.uuid4()),
            "occurred_at": occurred_at if isinstance(occurred_at, str) else occurred_at.isoformat(),
            "record_type": "event",
            "payload": {
                "id": message_id,
                "record_type": "message",
                "direction": "outbound",
                "type": "SMS",
                "from": {"phone_number": SENDER, "carrier": "TELNYX LLC"},
                "to": [{"phone_number": PHONE, "status": status, "carrier": "T-MOBILE"}],
                "text": "Your code is 271828",
                "parts": 1,
                "errors": list(errors),
            },
        },
        "meta": {"attempt": 1, "delivered_to": "https://example.com/webhooks/telnyx"},
    }


def signed(body: bytes, key: Ed25519PrivateKey, timestamp: int | None = None) -> dict:
    """Telnyx's headers for ``body``: the time it was signed, and the signature."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(stamp.encode() + b"|" + body)
    return {
        "telnyx-timestamp": stamp,
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "Content-Type": "application/json",
    }


@pytest.fixture
def key():
    """The test key pair Telnyx would sign with."""
    return Ed25519PrivateKey.generate()


@pytest.fixture
def client(make_app, db_url, key):
    """A client of an app that trusts ``key``; it sends no credentials of any kind."""
    return make_app(db_url, TELNYX_PUBLIC_KEY=public_text(key)).test_client()


@pytest.fixture
def post(client, key):
    """Post a receipt, signed with ``key`` unless told otherwise."""

    def send(document, signer=None, timestamp=None, headers=None):
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        sent = headers if headers is not None else signed(body, signer or key, timestamp)
        return client.post(URL, data=body, headers=sent)

    return send


@pytest.fixture
def message(conn, orgs):
    """Read the message Telnyx accepted as MESSAGE_ID, queued when the test starts."""
    conn.execute(
        "INSERT INTO sms_messages (organization_id, job_id, provider, to_number, segments,"
        " provider_message_id, status, accepted_at, updated_at)"
        " VALUES (%s, 101, 'telnyx', %s, 1, %s, 'queued', now(), now() - interval '1 hour')",
        (orgs.a, PHONE, MESSAGE_ID),
    )

    def read():
        with conn.cursor() as cur:
            cur.execute(
                "SELECT status, status_at, error_code, error_message, updated_at"
                " FROM sms_messages WHERE provider_message_id = %s",
                (MESSAGE_ID,),
            )
            names = [column.name for column in cur.description]
            return dict(zip(names, cur.fetchone(), strict=True))

    return read


def test_sent_then_delivered(post, message):
    first = post(event("sent", SENT_AT))
    assert first.status_code == 200
    assert first.json == {"result": "updated", "status": "sent"}
    assert message()["status"] == "sent"
    assert message()["status_at"] == SENT_AT

    second = post(event("delivered", DELIVERED_AT))
    assert second.json == {"result": "updated", "status": "delivered"}
    row = message()
    assert (row["status"], row["status_at"]) == ("delivered", DELIVERED_AT)
    assert (row["error_code"], row["error_message"]) == (None, None)


def test_a_replay_changes_nothing(post, message):
    body = json.dumps(event("delivered", DELIVERED_AT)).encode()
    assert post(body).json["result"] == "updated"
    before = message()
    replay = post(body)
    assert replay.status_code == 200
    assert replay.json == {"result": "unchanged", "status": "delivered"}
    assert message() == before  # updated_at and status_at included


def test_a_late_status_in_transit_never_undoes_a_final_one(post, message):
    assert post(event("delivered", DELIVERED_AT)).json["result"] == "updated"
    before = message()
    # Finalized before sent arrives: the older event changes nothing...
    assert post(event("sent", SENT_AT)).json == {"result": "unchanged", "status": "delivered"}
    # ...and nor does one in transit that Telnyx's clocks put later.
    later = DELIVERED_AT + datetime.timedelta(seconds=5)
    assert post(event("sending", later)).json["result"] == "unchanged"
    assert message() == before


def test_a_newer_final_status_replaces_an_older_one(post, message):
    post(event("delivery_unconfirmed", SENT_AT))
    assert post(event("delivered", DELIVERED_AT)).json["result"] == "updated"
    assert message()["status"] == "delivered"


def test_a_failure_keeps_the_providers_error(post, message):
    failure = {"code": "40008", "title": "Undeliverable", "detail": "The carrier refused it."}
    response = post(event("delivery_failed", DELIVERED_AT, errors=[failure]))
    assert response.json == {"result": "updated", "status": "delivery_failed"}
    row = message()
    assert row["status"] == "delivery_failed"
    assert row["error_code"] == "40008"
    assert row["error_message"] == "Undeliverable: The carrier refused it."


def test_a_numeric_error_code_and_an_expired_message(post, message):
    failure = {"code": 40300, "title": "Blocked as spam", "detail": None}
    assert post(event("expired", DELIVERED_AT, errors=[failure])).json["status"] == (
        "delivery_failed"
    )
    row = message()
    assert (row["error_code"], row["error_message"]) == ("40300", "Blocked as spam")


def test_an_unknown_message_is_ignored_with_200(post, message):
    before = message()
    response = post(event("delivered", DELIVERED_AT, message_id="not-ours"))
    assert response.status_code == 200
    assert response.json == {"result": "ignored", "reason": "no message has this id"}
    assert message() == before


@pytest.mark.parametrize(
    "document",
    [
        event(event_type="message.received"),  # an inbound message: not a receipt
        event(status="scheduled"),  # a status this service does not know
    ],
)
def test_other_events_are_ignored_with_200(post, message, document):
    before = message()
    response = post(document)
    assert response.status_code == 200
    assert response.json["result"] == "ignored"
    assert message() == before


def drop(document: dict, *path: str) -> dict:
    """``document`` without the key at ``path``."""
    inner = document
    for name in path[:-1]:
        inner = inner[name]
    del inner[path[-1]]
    return document


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ([event()], "body"),
        (drop(event(), "data", "payload", "id"), "data.payload.id"),
        (drop(event(), "data", "occurred_at"), "data.occurred_at"),
        (
            {"data": {**event()["data"], "payload": {**event()["data"]["payload"], "to": []}}},
            "data.payload.to",
        ),
        (event(message_id=7), "data.payload.id"),
        (event(message_id="x" * 129), "data.payload.id"),
        (event(occurred_at="yesterday"), "data.occurred_at"),
        (event(occurred_at="2026-01-01T10:00:00"), "data.occurred_at"),  # no offset
        (event(occurred_at="0001-01-01T00:00:00+01:00"), None),
        (event(occurred_at="9999-12-31T23:59:59-23:59"), None),
        (event(occurred_at=NOW + datetime.timedelta(days=1)), None),
        (event(errors=[{"title": "no code"}]), "data.payload.errors.0.code"),
    ],
)
def test_a_signed_but_malformed_receipt_is_422(post, message, document, field):
    before = message()
    response = post(document)
    assert response.status_code == 422
    assert response.is_json and response.json["error"] == "Unprocessable Entity"
    if field is not None:
        assert field in [error["field"] for error in response.json["errors"]]
    assert message() == before


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"\xff\xfe{}", b"[" * 30_000 + b"]" * 30_000],
    ids=["syntax", "not-utf8", "nested-too-deep"],
)
def test_a_signed_body_that_is_not_json_is_400(post, message, body):
    response = post(body)
    assert response.status_code == 400
    assert response.is_json and response.json["error"] == "Bad Request"


def test_a_body_past_the_limit_is_413(post, message):
    document = event()
    document["data"]["payload"]["text"] = "x" * webhooks.MAX_BODY_BYTES
    response = post(document)
    assert response.status_code == 413
    assert response.is_json


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


@pytest.mark.parametrize(
    "configured", ["", "not base64!", base64.b64encode(b"16 bytes of junk").decode()]
)
def test_without_a_usable_public_key_every_receipt_is_refused(
    make_app, db_url, key, message, configured
):
    client = make_app(db_url, TELNYX_PUBLIC_KEY=configured).test_client()
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
