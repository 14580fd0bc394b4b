"""Digest subscriptions: the one model of what a person sets on one, and the changes the
JSON API and the admin form both make, each with its audit entry.

Editing a subscription never touches ``last_period``, the scheduler's record of the
last period it deferred a digest for: a new hour, time zone or frequency applies from
the next period on, and a period already sent is never sent again because its
schedule moved.
"""

import functools
import re
import zoneinfo
from typing import Literal

import procrastinate
import psycopg
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.payloads import Email, integer
from webapp import audit
from webapp.queue import JobOptions, get_queue
from webapp.store import subscriptions as store

MAX_RECIPIENTS = 100
MAX_TIME_ZONE = 64
DIGEST_TASK = "email:send_digest"
# Names in the time zone database that are not places: the host's own zone, and the
# database's placeholder.
NOT_PLACES = {"localtime", "Factory", "posixrules"}
TIME_ZONE_TEXT = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$"
RECIPIENT_SEPARATORS = re.compile(r"[\s,;]+")

Frequency = Literal["daily", "weekly"]


@functools.cache
def time_zones() -> tuple[str, ...]:
    """The IANA time zone names a subscription may use, sorted."""
    return tuple(sorted(zoneinfo.available_timezones() - NOT_PLACES))


def time_zone_problem(name: str) -> str | None:
    """Why ``name`` is not a time zone a subscription or a form may use; None if it is."""
    if name not in time_zones():
        return f"{name[:MAX_TIME_ZONE]!r} is not an IANA time zone name, such as Europe/Paris"
    return None


class DigestSubscriptionFields(BaseModel):
    """What a person sets on a digest subscription."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recipients: list[Email] = Field(
        min_length=1,
        max_length=MAX_RECIPIENTS,
        description=f"1 to {MAX_RECIPIENTS} addresses; repeats are kept once",
    )
    frequency: Frequency = Field(description="A digest every day, or every week")
    weekday: integer(ge=1, le=7) = Field(
        default=1, description="For weekly digests: the day, 1 (Monday) to 7 (Sunday)"
    )
    hour: integer(ge=0, le=23) = Field(description="The hour the digest is due, 0 to 23")
    time_zone: str = Field(
        min_length=1,
        max_length=MAX_TIME_ZONE,
        pattern=TIME_ZONE_TEXT,
        description="The IANA time zone of the hour, e.g. Europe/Paris or UTC",
        json_schema_extra=lambda schema: schema.update(enum=list(time_zones())),
    )

    @field_validator("recipients")
    @classmethod
    def once_each(cls, value: list[str]) -> list[str]:
        """Each address once (in any case), in the order given."""
        seen: set[str] = set()
        kept = []
        for address in value:
            if address.lower() not in seen:
                seen.add(address.lower())
                kept.append(address)
        return kept

    @field_validator("time_zone")
    @classmethod
    def known_time_zone(cls, value: str) -> str:
        """A name the time zone database knows, so the scheduler can read it."""
        problem = time_zone_problem(value)
        if problem:
            raise ValueError(problem)
        return value


def split_recipients(text: str) -> list[str]:
    """Addresses written one a line, or separated by commas, semicolons or spaces."""
    return [part for part in RECIPIENT_SEPARATORS.split(text) if part]


def create(conn: psycopg.Connection, organization_id: int, fields: DigestSubscriptionFields):
    """Store a new subscription with its audit entry; return its row."""
    with conn.transaction():
        row = store.insert_subscription(conn, organization_id, fields.model_dump())
        record("digest_subscription.create", row, fields.model_dump())
    return row


def update(
    conn: psycopg.Connection,
    subscription: dict,
    organization_id: int | None,
    fields: DigestSubscriptionFields,
) -> dict | None:
    """Change a subscription with its audit entry; None if it was deleted meanwhile."""
    with conn.transaction():
        row = store.update_subscription(
            conn, subscription["id"], organization_id, fields.model_dump()
        )
        if row is not None:
            record("digest_subscription.update", row, fields.model_dump())
    return row


def delete(conn: psycopg.Connection, subscription_id: int, organization_id: int | None):
    """Delete a subscription with its audit entry; None if there was none."""
    with conn.transaction():
        row = store.delete_subscription(conn, subscription_id, organization_id)
        if row is not None:
            record("digest_subscription.delete", row)
    return row


def send_now(
    conn: psycopg.Connection, subscription: dict, platform: bool
) -> procrastinate.jobs.Job:
    """Defer one digest for the subscription's recipients and frequency, now, outside
    its schedule (which stays as it is), with an audit entry naming the job."""
    payload = {
        "organization_id": subscription["organization_id"],
        "period": subscription["frequency"],
        "recipients": list(subscription["recipients"]),
        "subscription_id": subscription["id"],
    }
    with conn.transaction():
        (job,) = get_queue().defer_many(
            [(DIGEST_TASK, payload, JobOptions())], subscription["organization_id"], platform
        )
        record("digest_subscription.send", subscription, {"job_id": job.id})
    return job


def record(action: str, row: dict, details: dict | None = None) -> None:
    """The audit entry of a change; addresses are counted, not copied into the log."""
    if details and "recipients" in details:
        details = {**details, "recipients": len(details["recipients"])}
    audit.record(
        action,
        target_type="digest_subscription",
        target_id=row["id"],
        organization_id=row["organization_id"],
        details=details,
    )
