"""The queue service: the one path by which the API and the forms put jobs in and steer them.

``init_app`` attaches it to the Flask app. Procrastinate's JobManager runs on
the web process's own pool, opened per process after fork.
"""

import datetime
import os
import threading
from dataclasses import dataclass
from typing import Any

import procrastinate
import psycopg
import pydantic
from flask import Flask, current_app
from procrastinate.manager import QUEUEING_LOCK_CONSTRAINT, JobManager

import tasks.app  # a module reference: tasks and webapp import each other
from tasks import queues
from webapp import db, monitoring
from webapp.store import accounts as accounts_store
from webapp.store import jobs as store

EXTENSION = "howdah_queue"
CANCELLABLE = {"todo", "doing"}
RETRYABLE = {"failed", "cancelled", "aborted"}
BIGINT = 2**63  # organization ids are bigint


class JobRejected(Exception):
    """The request cannot become a job; ``errors`` say why, field by field."""

    def __init__(self, errors: list[dict]):
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


class DuplicateJob(Exception):
    """A job with the same idempotency key is still waiting."""

    def __init__(self, job_id: int | None, index: int | None = None):
        super().__init__(f"a job with this idempotency key is waiting: {job_id}")
        self.job_id = job_id
        self.index = index


class WrongOrganization(Exception):
    """The payload names an organization other than the one the request acts for."""


class TaskNotAllowed(Exception):
    """The task is for platform admins and tokens only."""

    def __init__(self, task_name: str, index: int | None = None):
        super().__init__(f"{task_name} may be deferred by platform admins only")
        self.index = index


class InvalidState(Exception):
    """The job's status does not allow this action."""


@dataclass(frozen=True)
class JobOptions:
    """How to defer: everything a client may set besides the payload."""

    queue: str | None = None
    priority: int | None = None
    run_at: datetime.datetime | None = None
    delay_seconds: float | None = None
    idempotency_key: str | None = None


def field_errors(error: pydantic.ValidationError, prefix: str = "") -> list[dict]:
    """pydantic's errors as ``{field, message, type}``, with dotted field paths."""
    return [
        {
            "field": ".".join(str(p) for p in (prefix, *e["loc"]) if p != "") or prefix or "body",
            "message": e["msg"],
            "type": e["type"],
        }
        for e in error.errors(include_url=False)
    ]


def organization_of(args: Any) -> int | None:
    """A job's organization id; None for arguments written around the API that hold no
    id an organization could have (text, a boolean, a number beyond bigint)."""
    value = args.get("organization_id") if isinstance(args, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and -BIGINT <= value < BIGINT:
        return value
    return None


def with_article(word: str) -> str:
    """ "a failed", "an aborted": for messages about a job's status."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def queueing_lock(organization_id: int, idempotency_key: str | None) -> str | None:
    """Idempotency keys are unique per organization, not across tenants."""
    return None if idempotency_key is None else f"org:{organization_id}:{idempotency_key}"


class QueueService:
    """Defer, read, cancel and retry jobs; see the module docstring."""

    def __init__(self, app: Flask | None = None):
        self._manager: JobManager | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self

    @property
    def manager(self) -> JobManager:
        """Procrastinate's JobManager on this process's pool (opened after fork)."""
        with self._lock:
            if self._manager is None or self._pid != os.getpid():
                connector = procrastinate.SyncPsycopgConnector()
                connector.open(db.get_db().pool)
                self._manager, self._pid = JobManager(connector), os.getpid()
            return self._manager

    def build(
        self,
        task_name: str,
        payload: Any,
        options: JobOptions,
        organization_id: int | None = None,
        platform: bool = False,
    ) -> procrastinate.jobs.Job:
        """Validate a request against its task and return the job to insert.

        ``organization_id``, when given, is the only organization the job may belong to;
        ``platform`` says the caller is a platform admin, who may defer any task.
        """
        spec = tasks.app.spec(task_name)
        if spec is not None and spec.platform_only and not platform:
            raise TaskNotAllowed(task_name)
        if spec is None:
            raise JobRejected(
                [
                    {
                        "field": "task",
                        "message": f"unknown task {task_name!r}",
                        "type": "unknown_task",
                    }
                ]
            )
        try:
            data = spec.payload.model_validate(payload)
        except pydantic.ValidationError as exc:
            raise JobRejected(field_errors(exc, "payload")) from None
        if organization_id is not None and data.organization_id != organization_id:
            raise WrongOrganization(f"this request cannot defer jobs for {data.organization_id}")
        if options.queue is not None and options.queue not in queues.ALL:
            raise JobRejected(
                [
                    {
                        "field": "queue",
                        "message": f"unknown queue {options.queue!r}",
                        "type": "unknown_queue",
                    }
                ]
            )
        return spec.task.configure(
            task_kwargs=data.model_dump(mode="json"),
            queue=options.queue,
            priority=options.priority,
            schedule_at=options.run_at,
            schedule_in=None
            if options.delay_seconds is None
            else {"seconds": options.delay_seconds},
            queueing_lock=queueing_lock(data.organization_id, options.idempotency_key),
        ).job

    def defer(
        self,
        task_name: str,
        payload: Any,
        organization_id: int | None = None,
        platform: bool = False,
        **options: Any,
    ) -> int:
        """Validate and insert one job; return its id."""
        requests = [(task_name, payload, JobOptions(**options))]
        return self.defer_many(requests, organization_id, platform)[0].id

    def defer_many(
        self,
        requests: list[tuple[str, Any, JobOptions]],
        organization_id: int | None = None,
        platform: bool = False,
    ) -> list[procrastinate.jobs.Job]:
        """Insert jobs all together or not at all, and return them with their ids.

        Raises ``JobRejected`` (errors carry the index of each culprit), ``TaskNotAllowed``
        or ``DuplicateJob``.
        """
        built, errors = {}, []
        for index, (task_name, payload, options) in enumerate(requests):
            try:
                built[index] = self.build(task_name, payload, options, organization_id, platform)
            except JobRejected as exc:
                errors += [{"index": index, **error} for error in exc.errors]
            except TaskNotAllowed as exc:
                raise TaskNotAllowed(task_name, index) from exc
        errors += _repeated_keys(built)
        if organization_id is None:  # a platform admin: each job's organization must exist
            errors += self._unknown_organizations(built)
        if errors:
            raise JobRejected(sorted(errors, key=lambda e: e["index"]))
        jobs = list(built.values())
        try:
            # On the request's connection: one connection per request, whatever it does.
            ids = store.defer_jobs(db.get_conn(), [_to_defer(job) for job in jobs])
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name != QUEUEING_LOCK_CONSTRAINT:
                raise
            raise self._duplicate(built) from None
        todo = procrastinate.jobs.Status.TODO.value
        return [job.evolve(id=id_, status=todo) for job, id_ in zip(jobs, ids, strict=True)]

    def _unknown_organizations(self, built: dict[int, procrastinate.jobs.Job]) -> list[dict]:
        named = {job.task_kwargs["organization_id"] for job in built.values()}
        known = accounts_store.existing_organizations(db.get_conn(), sorted(named))
        return [
            {
                "index": index,
                "field": "payload.organization_id",
                "type": "unknown_organization",
                "message": f"no organization {job.task_kwargs['organization_id']}",
            }
            for index, job in built.items()
            if job.task_kwargs["organization_id"] not in known
        ]

    def _duplicate(self, built: dict[int, procrastinate.jobs.Job]) -> DuplicateJob:
        """The first job whose idempotency key a waiting job holds. Looked up rather than
        read from Procrastinate's exception, whose lock is parsed from PostgreSQL's error
        text and cut short at a ")" in the key."""
        locks = {i: job.queueing_lock for i, job in built.items() if job.queueing_lock}
        waiting = store.list_waiting_jobs_by_queueing_lock(db.get_conn(), list(locks.values()))
        index = next((i for i, lock in locks.items() if lock in waiting), None)
        # None: the waiting job left the queue between the insert and this lookup.
        return DuplicateJob(None if index is None else waiting[locks[index]], index)

    def get(self, job_id: int, organization_id: int | None) -> dict | None:
        """The job if it exists in this scope, else None (another tenant's job included)."""
        return store.get_job(db.get_conn(), job_id, organization_id)

    def list_jobs(self, organization_id: int | None, **filters: Any) -> list[dict]:
        """Jobs in scope, newest first; see ``store.jobs.list_jobs`` for the filters.

        Housekeeping runs are left out unless their queue is asked for by name.
        """
        hidden = None if filters.get("queue") else queues.HOUSEKEEPING
        return store.list_jobs(db.get_conn(), organization_id, hidden_queue=hidden, **filters)

    def health(self) -> dict:
        """Per-queue counts, oldest waiting job and healthy flags."""
        max_wait = current_app.config["QUEUE_MAX_WAIT_SECONDS"]
        return monitoring.queue_health(db.get_conn(), max_wait, known=queues.ALL)

    def cancel(self, job: dict) -> None:
        """Cancel a waiting job, or ask a running one to abort. A waiting job is cancelled
        without an abort request (nothing runs to abort); one that started meanwhile gets
        the request."""
        if job["status"] not in CANCELLABLE:
            raise InvalidState(f"{with_article(job['status'])} job cannot be cancelled")
        conn = db.get_conn()
        for abort in (False, True):
            if self.manager.cancel_job_by_id(job["id"], abort=abort, connection=conn):
                return
        raise InvalidState("the job finished before it could be cancelled")

    def retry(self, job: dict, platform: bool = False) -> int:
        """Run a finished, unsuccessful job again; return the id of the job that will run.

        A failed job goes back to its queue as it is (its attempts stay on record);
        a cancelled or aborted one is deferred afresh as a new job, with its arguments
        copied as they are stored, once: a job retried before answers ``InvalidState``
        naming its copy. A platform-only task needs a ``platform`` caller.
        """
        if job["status"] not in RETRYABLE:
            raise InvalidState(f"{with_article(job['status'])} job cannot be retried")
        if job["retried_as"] is not None:
            raise InvalidState(
                f"this job was retried already, as job {job['retried_as']}; retry that one"
            )
        spec = tasks.app.spec(job["task_name"])
        if spec is not None and spec.platform_only and not platform:
            raise TaskNotAllowed(job["task_name"])
        conn = db.get_conn()
        try:
            with conn.transaction():  # a savepoint when the caller holds a transaction
                if job["status"] != "failed":
                    return store.copy_job(conn, job["id"])
                store.clear_abort_request(conn, job["id"])
                if not store.retry_failed_job(conn, job["id"]):
                    raise InvalidState("the job is no longer failed")
                return job["id"]
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.table_name == "job_retries":
                raise InvalidState("this job was retried already, a moment ago") from None
            raise InvalidState("a job with this job's idempotency key is waiting") from None


def _to_defer(job: procrastinate.jobs.Job) -> dict:
    """The columns of a job to insert, as Procrastinate's JobManager writes them."""
    return {
        "queue_name": job.queue,
        "task_name": job.task_name,
        "priority": job.priority,
        "lock": job.lock,
        "queueing_lock": job.queueing_lock,
        "args": job.task_kwargs,
        "scheduled_at": job.scheduled_at,
    }


def _repeated_keys(built: dict[int, procrastinate.jobs.Job]) -> list[dict]:
    seen: dict[str, int] = {}
    errors = []
    for index, job in built.items():
        if job.queueing_lock is None:
            continue
        if job.queueing_lock in seen:
            errors.append(
                {
                    "index": index,
                    "field": "idempotency_key",
                    "type": "duplicate",
                    "message": f"repeats the key of job {seen[job.queueing_lock]}",
                }
            )
        seen.setdefault(job.queueing_lock, index)
    return errors


def get_queue() -> QueueService:
    """The app's queue service."""
    return current_app.extensions[EXTENSION]
