"""Receipts applied to their messages: in order, once, and never a 500 for a bad one."""

import datetime
import json

import pytest

from tests.webhooks.conftest import DELIVERED_AT, NOW, SENT_AT, event
from webapp import webhooks


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
    failure = {"code": "40008", "title": "Undeliverable", "detail": "+14155550123 refused it."}
    response = post(event("delivery_failed", DELIVERED_AT, errors=[failure]))
    assert response.json == {"result": "updated", "status": "delivery_failed"}
    row = message()
    assert row["status"] == "delivery_failed"
    assert row["error_code"] == "40008"
    # The number is cut to its last digits, as the sender's errors cut it.
    assert row["error_message"] == "Undeliverable: …0123 refused it."


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
        (event(message_id="a\x00b"), None),  # PostgreSQL's text cannot hold NUL
        (event("delivery_failed", errors=[{"code": "1", "title": "\x00"}]), None),
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
