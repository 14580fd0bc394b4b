"""SMS numbers: normalised to E.164 in the payload model, refused at the API if invalid."""

import json

import pydantic
import pytest

from tasks import payloads
from tasks.payloads import SmsPayload


def payload(to) -> dict:
    return {"organization_id": 1, "to": to, "body": "hi"}


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("+1 (415) 555-0123", "+14155550123"),
        ("+14155550123", "+14155550123"),
        ("+1 415.555.0123", "+14155550123"),
        ("+44 20 7183 8750", "+442071838750"),
        ("+49 (0)30 901820", "+4930901820"),  # the national trunk 0 in brackets
        ("+33 6 12 34 56 78", "+33612345678"),
    ],
)
def test_numbers_are_normalised_to_e164(written, stored):
    assert SmsPayload.model_validate(payload(written)).to == stored


@pytest.mark.parametrize(
    ("to", "says"),
    [
        ("4155550123", "should match pattern"),  # no country code: no + first
        ("+1 415 555 0123 ext 5", "should match pattern"),  # letters
        ("+15555555555", "not a valid phone number"),  # no such number in the plan
        ("+999 1234 5678", "country code"),  # no such country code
        ("+1 (415) 555-0123" + " " * 20, "at most 32 characters"),
        ("+", "should match pattern"),
        (14155550123, "valid string"),
    ],
)
def test_invalid_numbers_are_refused(to, says):
    with pytest.raises(pydantic.ValidationError, match=says) as caught:
        SmsPayload.model_validate(payload(to))
    assert [e["loc"] for e in caught.value.errors()] == [("to",)]


def test_numbers_checked_before_are_answered_alike_and_refusals_are_not_kept():
    for _ in range(2):
        assert SmsPayload.model_validate(payload("+1 415 555 0123")).to == "+14155550123"
        with pytest.raises(pydantic.ValidationError, match="not a valid phone number"):
            SmsPayload.model_validate(payload("+15555555555"))
    kept = payloads.e164.cache_info()
    assert kept.maxsize == payloads.PHONE_NUMBERS_KEPT
    with pytest.raises(ValueError, match="not a valid phone number"):
        payloads.e164("+15555555555")
    assert payloads.e164.cache_info().currsize == kept.currsize  # a refusal takes no room


def test_the_schema_states_the_bounds():
    schema = SmsPayload.model_json_schema()["properties"]["to"]
    assert schema["maxLength"] == 32 and schema["pattern"].startswith("^\\+")
    assert "valid" in schema["description"]
    for example in schema["examples"]:
        SmsPayload.model_validate(payload(example))


def test_the_api_stores_the_normalised_number(client, conn):
    body = {"task": "sms:send_notification", "payload": payload("+1 (415) 555-0123")}
    response = client.post("/api/v1/jobs", json=body)
    assert response.status_code == 202, response.get_json()
    args = conn.execute("SELECT args FROM procrastinate_jobs").fetchone()[0]
    assert args["to"] == "+14155550123"


@pytest.mark.parametrize("to", ["+15555555555", "+1 415 555 0123 ext 5", "415-555-0123"])
def test_the_api_refuses_an_invalid_number_and_makes_no_job(client, conn, to):
    body = {"task": "sms:send_notification", "payload": payload(to)}
    response = client.post("/api/v1/jobs", json=body)
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert [e["field"] for e in errors] == ["payload.to"], json.dumps(errors)
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 0
