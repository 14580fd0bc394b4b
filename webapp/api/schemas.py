"""Request bodies of the JSON API, validated with pydantic."""

import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks import queues
from tasks.payloads import integer

MAX_BATCH = 1000
MAX_TEXT = 200  # task names, idempotency keys and the like
# How far ahead a job may be scheduled, by run_at or delay_seconds alike.
MAX_SCHEDULE = datetime.timedelta(days=366)
# How far in the past run_at may lie (clock skew, a late resend); such a job runs at once.
MAX_RUN_AT_PAST = datetime.timedelta(days=1)

# Procrastinate reads a key back from the one-line text of PostgreSQL's unique-violation
# error, and fails on a key holding a line break: keys are printable text.
KEY_TEXT = r"^[^\x00-\x1f\x7f]*$"

ClientQueue = Literal[queues.ALL]
Priority = integer(ge=queues.CLIENT_PRIORITY_MIN, le=queues.CLIENT_PRIORITY_MAX)


def no_both_schedules(schema: dict) -> None:
    """State in the schema what ``one_schedule`` checks: not run_at and delay_seconds both."""
    schema["not"] = {
        "required": ["run_at", "delay_seconds"],
        "properties": {"run_at": {"type": "string"}, "delay_seconds": {"type": "number"}},
    }


class JobOptionFields(BaseModel):
    """What a client may set besides the task and its payload."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=no_both_schedules)

    queue: ClientQueue | None = Field(None, description="Override the task's default queue")
    priority: Priority | None = Field(
        None,
        description="Higher runs first; default from the task. Priorities above"
        f" {queues.CLIENT_PRIORITY_MAX} are kept for Howdah's own work.",
    )
    run_at: AwareDatetime | None = Field(
        None,
        description="Run no earlier than this time (with its UTC offset). It must lie between"
        f" {MAX_RUN_AT_PAST.days} day ago and {MAX_SCHEDULE.days} days ahead; a past time"
        " runs at once. Not with delay_seconds.",
    )
    delay_seconds: float | None = Field(
        None,
        ge=0,
        le=MAX_SCHEDULE.total_seconds(),
        description="Run after this many seconds. Not with run_at.",
    )
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_TEXT,
        pattern=KEY_TEXT,
        description="While a job of the organization with this key waits, another request"
        " with it answers 409. Printable text: no control characters.",
    )

    @field_validator("run_at")
    @classmethod
    def in_schedule_window(cls, value: datetime.datetime | None) -> datetime.datetime | None:
        """Bound run_at in UTC: PostgreSQL would store far years that psycopg cannot read."""
        if value is None:
            return None
        now = datetime.datetime.now(datetime.UTC)
        try:
            utc = value.astimezone(datetime.UTC)
        except OverflowError:  # year 1 at +14:00 is before year 1 in UTC
            utc = None
        if utc is None or not now - MAX_RUN_AT_PAST <= utc <= now + MAX_SCHEDULE:
            raise ValueError(
                f"run_at must lie between {MAX_RUN_AT_PAST.days} day ago and"
                f" {MAX_SCHEDULE.days} days from now"
            )
        return utc

    @model_validator(mode="after")
    def one_schedule(self):
        if self.run_at is not None and self.delay_seconds is not None:
            raise ValueError("give run_at or delay_seconds, not both")
        return self


class JobRequest(JobOptionFields):
    """POST /api/v1/jobs, and each item of a batch, as the server first reads it."""

    task: str = Field(
        min_length=1, max_length=MAX_TEXT, description="A name from GET /api/v1/tasks"
    )
    payload: dict[str, Any] = Field(description="The task's payload; see its payload_schema")


class BatchRequest(BaseModel):
    """POST /api/v1/jobs/batch: the items are validated one by one, for errors by index."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)
