"""Job payload models: every task's arguments, validated before a job exists.

Every payload extends ``JobPayload``, so no job can be deferred without a
valid ``organization_id``.
"""

import datetime
import functools
import re
from typing import Annotated, Any, Literal

import email_validator
import email_validator.rfc_constants
import phonenumbers
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    Strict,
    StringConstraints,
    field_validator,
)


def _integral(value: Any) -> Any:
    """2.0 as 2: JSON Schema's integer is any number without a fraction."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def integer(**bounds: int) -> Any:
    """A JSON integer within ``bounds`` (ge, gt, le, lt): a number without a fraction
    (2 or 2.0, as JSON Schema counts them), never "2" nor true."""
    return Annotated[int, Strict(), Field(**bounds), BeforeValidator(_integral)]


# PostgreSQL stores no NUL character in text or JSON: a string holding one is refused
# by validation, not by the database.
NO_NUL = r"^[^\x00]*$"


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


# EmailStr (email-validator) refuses special-use domains such as .test and .local; the
# schema says so too (ECMA-262 lookahead, for JSON Schema only), so an address generated
# from it is not refused for a rule it never stated.
SPECIAL_USE_DOMAINS = "|".join(map(_any_case, email_validator.SPECIAL_USE_DOMAIN_NAMES))
Email = Annotated[
    EmailStr,
    Field(
        description="An address in the form email-validator accepts: deliverable in form,"
        f" under no special-use domain ({', '.join(email_validator.SPECIAL_USE_DOMAIN_NAMES)})",
        json_schema_extra={
            "maxLength": email_validator.rfc_constants.EMAIL_MAX_LENGTH,
            "pattern": f"^(?!.*[@.](?:{SPECIAL_USE_DOMAINS})$)",
        },
    ),
]


# libphonenumber's parse and validity check were the largest single cost of POST
# /api/v1/jobs in the web process (about 30 µs of its Python): a recipient messaged again
# (order placed, shipped, delivered) is checked once per process. Only valid numbers are
# kept (a refusal raises, which the cache does not keep), and at most this many.
PHONE_NUMBERS_KEPT = 4096


@functools.lru_cache(maxsize=PHONE_NUMBERS_KEPT)
def e164(value: str) -> str:
    """A phone number in E.164 form, if ``value`` names a valid number with its country
    code (+ first); spaces, dashes, dots and parentheses between the digits are allowed."""
    try:
        number = phonenumbers.parse(value, None)  # no default region: the + is required
    except phonenumbers.NumberParseException:
        raise ValueError(
            "must be a phone number with its country code, e.g. +14155550123"
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid phone number (libphonenumber's numbering plans)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# The schema states the characters accepted and the length. That the digits make a valid
# number (as libphonenumber's numbering plans say) no pattern of reasonable size can
# state: the format "phone" names that rule, so a generator that knows it (the API's
# conformance test registers one) makes numbers the API accepts, and random strings
# of the pattern alone are mostly refused, as the description warns.
PHONE_NUMBER_MAX_LENGTH = 32
PhoneNumber = Annotated[
    str,
    StringConstraints(max_length=PHONE_NUMBER_MAX_LENGTH, pattern=r"^\+[0-9][0-9 ().-]*$"),
    AfterValidator(e164),
    Field(
        description="A valid phone number with its country code, e.g. +14155550123 or"
        " +1 (415) 555-0123; stored in E.164 form. The digits must make a number the"
        " country's numbering plan allows (libphonenumber), or the job is refused",
        examples=["+14155550123", "+44 20 7183 8750"],
        json_schema_extra={"format": "phone"},
    ),
]


class JobPayload(BaseModel):
    """Fields every job carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    organization_id: integer(gt=0, le=2**63 - 1) = Field(
        description="The organization the job belongs to"
    )


class SmsPayload(JobPayload):
    """One SMS notification."""

    to: PhoneNumber
    body: str = Field(
        min_length=1,
        max_length=1600,
        pattern=r"^[^\x00]*[^\s\x00][^\x00]*$",  # not blank, and no NUL (see NO_NUL)
        description="Message text, 1-1,600 characters, not all blank",
    )


class DigestPayload(JobPayload):
    """An email digest of the organization's activity over a period."""

    period: Literal["daily", "weekly"]
    recipients: list[Email] = Field(min_length=1, max_length=100)
    subscription_id: integer(gt=0, le=2**63 - 1) | None = Field(
        default=None, description="The subscription the digest is for; none when sent by hand"
    )
    until: AwareDatetime | None = Field(
        default=None,
        description="The end of the period the digest covers, with its UTC offset, from"
        " 2000 to 2100; by default the time the job runs",
        json_schema_extra={"pattern": r"^(20[0-9]{2})-"},
    )

    @field_validator("until", mode="before")
    @classmethod
    def a_time_in_text(cls, value: Any) -> Any:
        """until is RFC 3339 text, as the schema says: not a number of seconds."""
        written = isinstance(value, str) and re.match(r"[0-9]{4}-", value)
        if value is not None and not (written or isinstance(value, datetime.datetime)):
            raise ValueError("until must be an ISO 8601 time with its UTC offset, as text")
        return value

    @field_validator("until")
    @classmethod
    def within_years(cls, value: datetime.datetime | None) -> datetime.datetime | None:
        """Bound ``until``: PostgreSQL stores years that psycopg cannot read back."""
        # The year as written (what the schema's pattern states): psycopg reads no year
        # past 9999, and a digest of another century is a mistake.
        if value is not None and not 2000 <= value.year < 2100:
            raise ValueError("until must lie between 2000 and 2100")
        return value


class NoopPayload(JobPayload):
    """Nothing but the organization."""


class SleepPayload(JobPayload):
    """How long to sleep."""

    seconds: float = Field(ge=0, le=3600, strict=True)  # a number, not text or a boolean


class StepsPayload(JobPayload):
    """How many steps to take, and how long each takes."""

    steps: integer(ge=1, le=10_000)
    seconds_per_step: float = Field(ge=0, le=60, strict=True)


class FlakyPayload(JobPayload):
    """How many attempts fail before one succeeds."""

    failures: integer(ge=0, le=100)
