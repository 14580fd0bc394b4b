"""Request bodies of the JSON API, validated with pydantic.

The server validates a job request in two steps: ``JobRequest`` (the task's name, any
payload object, and the options every task shares), then the named task's payload model
(``webapp.queue``). The OpenAPI document offers a client one model per task instead,
built here from the same option fields and the same payload models, so both state the
same bounds.
"""

import datetime
import functools
import re
from typing import Annotated, Any, Literal, Union

import pydantic
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

import tasks.app  # a module reference: tasks and webapp import each other
from tasks import queues
from tasks.payloads import integer

MAX_BATCH = 1000
MAX_TEXT = 200  # task names, idempotency keys and the like
# How far ahead a job may be scheduled, by run_at or delay_seconds alike.
MAX_SCHEDULE = datetime.timedelta(days=366)
# How far in the past run_at may lie (clock skew, a late resend); such a job runs at once.
MAX_RUN_AT_PAST = datetime.timedelta(days=1)

# Procrastinate reads a key back from the one-line text of PostgreSQL's unique-violation
# error, and fails on a key holding a line break: keys hold no control characters (C0 or
# C1) and no line or paragraph separators. (The characters themselves, not escapes, so
# that pydantic's regex engine and a client's read the pattern alike.)
KEY_TEXT = "^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"

# What an RFC 3339 time starts with (pydantic would take "1800000000" for a timestamp).
DATE_TIME_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]")

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
        strict=True,  # a number: not a boolean, not a numeric string
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
        " with it answers 409. No control characters and no line separators.",
    )

    @field_validator("run_at", mode="before")
    @classmethod
    def a_time_in_text(cls, value: Any) -> Any:
        """run_at is RFC 3339 text, as the document says: not a number of seconds."""
        if value is not None and not (isinstance(value, str) and DATE_TIME_START.match(value)):
            raise ValueError("run_at must be an ISO 8601 time with its UTC offset, as text")
        return value

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


PAYLOAD_RULES = (
    " Its organization_id must be the caller's own organization (403 otherwise); a"
    " platform caller may name any existing organization (422 for one that does not exist)."
)
PLATFORM_ONLY = " For platform admins and platform tokens only: an organization's caller gets 403."


def model_name(task_name: str) -> str:
    """``sms:send_notification`` -> ``SmsSendNotificationJob``."""
    return "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", task_name)) + "Job"


def task_request_model(spec) -> type[BaseModel]:
    """The request deferring one task: its name as a constant, its own payload model."""
    description = f"Defer {spec.name}: {spec.description}".rstrip(": ")
    if spec.platform_only:
        description += "." + PLATFORM_ONLY
    return pydantic.create_model(
        model_name(spec.name),
        __base__=JobOptionFields,
        __doc__=description,
        task=(Literal[spec.name], Field(description="The task to run")),
        payload=(spec.payload, Field(description="The task's arguments." + PAYLOAD_RULES)),
    )


@functools.cache
def task_requests() -> tuple[type[BaseModel], type[BaseModel]]:
    """The document's JobRequest (every task's request model, in one union told apart by
    ``task``) and BatchRequest (whose items are that union)."""
    # The tasks any caller may defer first, then those for platform callers only.
    specs = sorted(tasks.app.deferrable().values(), key=lambda s: (s.platform_only, s.name))
    models = tuple(task_request_model(spec) for spec in specs)
    one_of = Annotated[Union[models], Field(discriminator="task")]  # noqa: UP007 - a tuple
    job = pydantic.create_model(
        "JobRequest",
        __base__=pydantic.RootModel[one_of],
        __doc__="One job: the task's name picks the payload's schema",
    )
    batch = pydantic.create_model(
        "BatchRequest",
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"Up to {MAX_BATCH:,} jobs, deferred together or not at all",
        jobs=(list[one_of], Field(min_length=1, max_length=MAX_BATCH)),
    )
    return job, batch
