"""Request bodies of the JSON API, validated with pydantic."""

import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks import queues

MAX_BATCH = 1000
MAX_TEXT = 200  # task names, idempotency keys and the like
# How far ahead a job may be scheduled, by run_at or delay_seconds alike.
MAX_SCHEDULE = datetime.timedelta(days=366)
# How far in the past run_at may lie (clock skew, a late resend); such a job runs at once.
MAX_RUN_AT_PAST = datetime.timedelta(days=1)


class JobRequest(BaseModel):
    """POST /api/v1/jobs, and each item of a batch."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=200, description="A name from GET /api/v1/tasks")
    payload: dict[str, Any] = Field(description="The task's payload; see its payload_schema")
    queue: str | None = Field(None, description="Override the task's default queue")
    priority: int | None = Field(
        None,
        ge=queues.CLIENT_PRIORITY_MIN,
        le=queues.CLIENT_PRIORITY_MAX,
        strict=True,
        description="Higher runs first; default from the task. Priorities above"
        f" {queues.CLIENT_PRIORITY_MAX} are kept for Howdah's own work.",
    )
    run_at: AwareDatetime | None = Field(
        None,
        description="Run no earlier than this time (with its UTC offset). It must lie between"
        f" {MAX_RUN_AT_PAST.days} day ago and {MAX_SCHEDULE.days} days ahead; a past time"
        " runs at once.",
    )
    delay_seconds: float | None = Field(
        None,
        ge=0,
        le=MAX_SCHEDULE.total_seconds(),
        description="Run after this many seconds",
    )
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="While a job with this key waits, another request with it answers 409",
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


class BatchRequest(BaseModel):
    """POST /api/v1/jobs/batch: the items are validated one by one, for errors by index."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)
