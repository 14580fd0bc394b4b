"""What the API answers: one pydantic model per body, used by the views to serialise it
and by the OpenAPI document to describe it, so the two cannot drift.

Rows read from our own database are trusted: the views build them with
``model_construct`` (no validation, the cheap path POST /api/v1/jobs needs) and dump
them through the model's serialiser, which warns when a value does not fit its field.
"""

import datetime
from typing import Annotated, Any, Literal

from flask import Response, current_app, request
from pydantic import BaseModel, ConfigDict, Field

from webapp.api import bp, params
from webapp.errors import JobStatus
from webapp.queue import organization_of

Id = Annotated[int, Field(ge=params.ID_BOUNDS["minimum"], le=params.ID_BOUNDS["maximum"])]
NullableTime = datetime.datetime | None


class Document(BaseModel):
    """A response body: every key is always there (null where the model allows it), and
    no other."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


def respond(document: BaseModel, status: int = 200, headers: dict | None = None) -> Response:
    """A JSON response holding ``document``, serialised by its own model."""
    return current_app.response_class(
        document.model_dump_json(by_alias=True),
        status=status,
        headers=headers,
        mimetype="application/json",
    )


class Links(Document):
    """Where to read and steer the job."""

    self: str
    attempts: str
    cancel: str
    retry: str


def job_path(job_id: int) -> str:
    """The path of ``get_job``; built by hand because url_for cost ~10 % of a POST."""
    return f"{request.script_root}{bp.url_prefix}/v1/jobs/{job_id}"


def links(job_id: int) -> Links:
    path = job_path(job_id)
    return Links.model_construct(
        self=path, attempts=f"{path}/attempts", cancel=f"{path}/cancel", retry=f"{path}/retry"
    )


class LastError(Document):
    """The error of the job's latest unsuccessful attempt."""

    class_: str = Field(alias="class", description="The exception's class")
    message: str | None


class Progress(Document):
    """The progress the job's task last reported; kept once the job has ended."""

    fraction: float = Field(ge=0, le=1, description="How far the task had come, from 0 to 1")
    message: str = Field(max_length=200, description="What the task said it was doing")
    updated_at: datetime.datetime = Field(description="When the task reported it")


class Job(Document):
    """A job as the API shows it."""

    id: Id
    status: JobStatus
    task: str
    queue: str
    priority: int
    organization_id: int | None = Field(
        description="The organization in the job's payload; null for Howdah's own"
        " housekeeping jobs and for rows written around the API without a usable id"
    )
    payload: Any = Field(
        description="The task's arguments as stored (an object for every job deferred"
        " through the API)"
    )
    attempts: int = Field(ge=0, description="Runs started so far")
    abort_requested: bool
    created_at: NullableTime
    scheduled_at: NullableTime = Field(description="Set when the job waits for a time")
    started_at: NullableTime = Field(description="Start of the latest run")
    finished_at: NullableTime
    last_error: LastError | None
    retried_from: Id | None = Field(description="The job this one is a retry of")
    retried_as: Id | None = Field(description="The job deferred as a retry of this one")
    progress: Progress | None = Field(
        description="The latest progress its task reported (in any run); null if none"
    )
    links: Links

    @classmethod
    def from_row(cls, row: dict) -> "Job":
        """A job row of ``webapp.store.jobs``."""
        last_error = None
        if row["error_class"] is not None:
            last_error = LastError.model_construct(
                class_=row["error_class"], message=row["error_message"]
            )
        progress = None
        if row["progress"] is not None:
            progress = Progress.model_construct(**row["progress"])
        return cls.model_construct(
            id=row["id"],
            status=row["status"],
            task=row["task_name"],
            queue=row["queue_name"],
            priority=row["priority"],
            organization_id=organization_of(row["args"]),
            payload=row["args"],
            attempts=row["runs"],
            abort_requested=row["abort_requested"],
            created_at=row["created_at"],
            scheduled_at=row["scheduled_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            last_error=last_error,
            retried_from=row["retried_from"],
            retried_as=row["retried_as"],
            progress=progress,
            links=links(row["id"]),
        )


class Accepted(Document):
    """A job just deferred."""

    id: Id
    status: Literal["todo"]
    task: str
    queue: str
    links: Links

    @classmethod
    def from_job(cls, job) -> "Accepted":
        """From the Procrastinate job ``defer`` returned."""
        return cls.model_construct(
            id=job.id, status="todo", task=job.task_name, queue=job.queue, links=links(job.id)
        )


class BatchAccepted(Document):
    """Every job of a batch, in the order of the request."""

    jobs: list[Accepted]


class JobPage(Document):
    """A page of jobs, newest first."""

    jobs: list[Job]
    next_cursor: str | None = Field(
        pattern=r"^[0-9]+$", description="Pass as ?cursor= for the next page; null on the last"
    )


class Attempt(Document):
    """One run of a job, as the worker recorded it."""

    job_id: Id
    attempt: int = Field(ge=1)
    worker_name: str
    outcome: Literal["succeeded", "failed", "aborted", "lost"]
    started_at: datetime.datetime
    finished_at: datetime.datetime
    duration_seconds: float | None = Field(description="Null when a time is out of range")
    error_class: str | None
    error_message: str | None
    traceback: str | None = Field(description="For platform admins; null for others")
    result_summary: str | None
    retry_at: NullableTime = Field(
        description="When the job runs again after this attempt; null if it does not"
    )


class AttemptList(Document):
    """Every recorded attempt of a job, first to last."""

    attempts: list[Attempt]


class RetryPolicy(Document):
    """Exponential backoff with a cap: base, 2*base, 4*base, ... at most cap seconds."""

    max_retries: int
    base_seconds: float
    cap_seconds: float


class TaskInfo(Document):
    """A task a client may defer, with its defaults."""

    name: str
    description: str
    queue: str
    priority: int
    time_limit_seconds: float
    retry: RetryPolicy
    platform_only: bool
    payload_schema: dict[str, Any] = Field(description="JSON Schema of the task's payload")


class TaskList(Document):
    """Every task the caller may defer."""

    tasks: list[TaskInfo]


class Database(Document):
    reachable: bool
    server_version: str | None
    pending_migrations: list[str] | None = Field(description="Null when unreachable")


class Worker(Document):
    id: Id
    last_heartbeat: datetime.datetime
    heartbeat_age_seconds: float
    stale: bool


class Versions(Document):
    howdah: str
    procrastinate: str
    postgresql: str | None


class PlatformStatus(Document):
    """Database, workers and versions."""

    database: Database
    workers: list[Worker]
    versions: Versions


class PlatformUnavailable(Document):
    """The status when the database does not answer."""

    error: str
    message: str
    database: Database
    workers: None
    versions: Versions


class QueueState(Document):
    name: str
    counts: dict[JobStatus, int]
    oldest_waiting_seconds: float | None = Field(description="Null when nothing waits")
    healthy: bool


class QueueHealth(Document):
    """Per-queue counts, the oldest waiting job and a healthy flag."""

    healthy: bool
    max_wait_seconds: float
    queues: list[QueueState]


class AuditEntry(Document):
    id: Id
    at: datetime.datetime
    actor_type: Literal["user", "token", "cli", "anonymous"]
    actor_id: Id | None
    actor_label: str
    organization_id: Id | None
    action: str
    target_type: str
    target_id: str
    ip: str | None
    details: Any


class AuditPage(Document):
    """Audit entries, newest first."""

    entries: list[AuditEntry]
    next_cursor: str | None = Field(pattern=r"^[0-9]+$")


class SubscriptionLinks(Document):
    """Where to read, change and send the subscription."""

    self: str
    send: str


def subscription_path(subscription_id: int) -> str:
    """The path of ``get_digest_subscription``."""
    return f"{request.script_root}{bp.url_prefix}/v1/digest-subscriptions/{subscription_id}"


class DigestSubscription(Document):
    """A digest subscription as the API shows it."""

    id: Id
    organization_id: Id
    recipients: list[str] = Field(min_length=1, max_length=100)
    frequency: Literal["daily", "weekly"]
    weekday: int = Field(ge=1, le=7, description="1 (Monday) to 7 (Sunday); weekly digests")
    hour: int = Field(ge=0, le=23)
    time_zone: str
    last_period: datetime.date | None = Field(
        description="The local date of the last period the scheduler deferred a digest for;"
        " null before the first. Editing the subscription keeps it."
    )
    last_job_id: Id | None = Field(description="The scheduler's latest digest job")
    created_at: datetime.datetime
    updated_at: datetime.datetime
    links: SubscriptionLinks

    @classmethod
    def from_row(cls, row: dict) -> "DigestSubscription":
        """A row of ``webapp.store.subscriptions``."""
        path = subscription_path(row["id"])
        fields = {name: row[name] for name in cls.model_fields if name != "links"}
        links = SubscriptionLinks.model_construct(self=path, send=f"{path}/send")
        return cls.model_construct(**fields, links=links)


class DigestSubscriptionPage(Document):
    """A page of subscriptions, newest first."""

    subscriptions: list[DigestSubscription]
    next_cursor: str | None = Field(
        pattern=r"^[0-9]+$", description="Pass as ?cursor= for the next page; null on the last"
    )


def page_cursor(rows: list[dict], limit: int) -> str | None:
    """The cursor of the page after ``rows[:limit]``, if ``rows`` went further."""
    return str(rows[limit - 1]["id"]) if len(rows) > limit else None


RESPONSES = [
    Job,
    Accepted,
    BatchAccepted,
    JobPage,
    AttemptList,
    TaskList,
    PlatformStatus,
    PlatformUnavailable,
    QueueHealth,
    AuditPage,
    DigestSubscription,
    DigestSubscriptionPage,
]
