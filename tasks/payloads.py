"""Job payload models: every task's arguments, validated before a job exists.

Every payload extends ``JobPayload``, so no job can be deferred without a
valid ``organization_id``.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

E164 = Annotated[
    str,
    StringConstraints(pattern=r"^\+[1-9][0-9]{1,14}$"),
    Field(description="Phone number in E.164 form, e.g. +14155550123", examples=["+14155550123"]),
]


class JobPayload(BaseModel):
    """Fields every job carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    organization_id: int = Field(
        gt=0, le=2**63 - 1, strict=True, description="The organization the job belongs to"
    )


class SmsPayload(JobPayload):
    """One SMS notification."""

    to: E164
    body: str = Field(min_length=1, max_length=1600, description="Message text, 1-1,600 chars")


class DigestPayload(JobPayload):
    """An email digest of the organization's activity over a period."""

    period: Literal["daily", "weekly"]
    recipients: list[EmailStr] = Field(min_length=1, max_length=100)


class NoopPayload(JobPayload):
    """Nothing but the organization."""


class SleepPayload(JobPayload):
    """How long to sleep."""

    seconds: float = Field(ge=0, le=3600)


class FlakyPayload(JobPayload):
    """How many attempts fail before one succeeds."""

    failures: int = Field(ge=0, le=100, strict=True)
