"""Payload models: every task's arguments are validated, organization_id first."""

import pydantic
import pytest

from tasks import payloads

SMS = {"organization_id": 7, "to": "+14155550123", "body": "Your order shipped."}
DIGEST = {"organization_id": 7, "period": "weekly", "recipients": ["ops@example.com"]}


@pytest.mark.parametrize(
    "model",
    [
        payloads.SmsPayload,
        payloads.DigestPayload,
        payloads.NoopPayload,
        payloads.SleepPayload,
        payloads.FlakyPayload,
    ],
)
def test_every_payload_requires_an_organization(model):
    assert issubclass(model, payloads.JobPayload)
    with pytest.raises(pydantic.ValidationError) as caught:
        model.model_validate({})
    assert "organization_id" in {e["loc"][0] for e in caught.value.errors()}


@pytest.mark.parametrize(
    ("organization_id", "valid"),
    [
        (1, True),
        (2**63 - 1, True),
        (0, False),
        (-3, False),
        ("7", False),
        (7.0, True),  # JSON Schema's integer: a number without a fraction; stored as 7
        (7.5, False),
        (True, False),
        (None, False),
        (2**63, False),
    ],
)
def test_organization_id_is_a_positive_integer(organization_id, valid):
    data = {**SMS, "organization_id": organization_id}
    if valid:
        value = payloads.SmsPayload.model_validate(data).organization_id
        assert value == organization_id and type(value) is int
    else:
        with pytest.raises(pydantic.ValidationError, match="organization_id"):
            payloads.SmsPayload.model_validate(data)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"to": "4155550123"}, "to"),
        ({"to": "+0155550123"}, "to"),
        ({"to": "+1415555012345678"}, "to"),
        ({"to": "+1 415 555 0123 ext. 5"}, "to"),
        ({"to": "+15555555555"}, "to"),  # the digits make no valid number
        ({"body": ""}, "body"),
        ({"body": "x" * 1601}, "body"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_sms_payload_rejects(changes, field):
    with pytest.raises(pydantic.ValidationError) as caught:
        payloads.SmsPayload.model_validate({**SMS, **changes})
    assert [e["loc"][0] for e in caught.value.errors()] == [field]


def test_sms_payload_accepts_the_longest_message():
    assert len(payloads.SmsPayload.model_validate({**SMS, "body": "x" * 1600}).body) == 1600


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"period": "hourly"}, "period"),
        ({"recipients": []}, "recipients"),
        ({"recipients": ["not-an-address"]}, "recipients"),
        ({"recipients": [f"u{i}@example.com" for i in range(101)]}, "recipients"),
    ],
)
def test_digest_payload_rejects(changes, field):
    with pytest.raises(pydantic.ValidationError) as caught:
        payloads.DigestPayload.model_validate({**DIGEST, **changes})
    assert caught.value.errors()[0]["loc"][0] == field


def test_digest_payload_accepts_daily_and_weekly():
    for period in ("daily", "weekly"):
        assert payloads.DigestPayload.model_validate({**DIGEST, "period": period}).period == period
