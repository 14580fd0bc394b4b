"""Fixtures for POST /webhooks/telnyx: a test Ed25519 key, receipts shaped as Telnyx sends
them, and a message Telnyx accepted."""

import base64
import datetime
import json
import time
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

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
