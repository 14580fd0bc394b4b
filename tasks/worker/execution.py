"""Running one job and turning whatever happened into an ``Outcome``.

The rules are Procrastinate's (``Worker._process_job``): a task that returns
succeeded; one that raises failed, and its retry strategy decides whether it runs
again; an abort someone asked for ends it as aborted for good, while an abort for a
worker shutdown may be retried. Nothing here raises: a row the worker cannot load,
a task it does not know, or an error while describing an error all become an
outcome with the error on record.
"""

import asyncio
import datetime
import inspect
import json
import logging
import traceback
from dataclasses import dataclass
from typing import Any

import procrastinate
from procrastinate.job_context import AbortReason

log = logging.getLogger("tasks.worker")

MESSAGE_LIMIT = 2_000
TRACEBACK_LIMIT = 64_000
RESULT_LIMIT = 2_000
ABORTED = (procrastinate.exceptions.JobAborted, asyncio.CancelledError)


class UnloadableJob(Exception):
    """The job's row cannot be turned into a call of its task."""


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def clean(text: str | None, limit: int, keep_end: bool = False) -> str | None:
    """Text PostgreSQL can store: no NUL, no lone surrogate, at most ``limit`` characters."""
    if text is None:
        return None
    text = text.replace("\x00", "\\x00")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text[-limit:] if keep_end else text[:limit]


def safely(render, fallback: str) -> str:
    """``render()``, or ``fallback`` if rendering itself fails (a broken ``__str__``)."""
    try:
        return render()
    except Exception:
        return fallback


def summarize(result: Any) -> str | None:
    """A short JSON (or repr) rendering of a task's return value."""
    if result is None:
        return None
    text = safely(
        lambda: json.dumps(result, default=str, sort_keys=True),
        safely(lambda: repr(result), "<a result that cannot be shown>"),
    )
    return clean(text, RESULT_LIMIT)


@dataclass
class Outcome:
    """How one run of a job ended, waiting to be written to the database."""

    job_id: int
    attempts: int  # the job's attempts when fetched; this run is attempt ``attempts + 1``
    task_name: str
    status: str  # succeeded, failed or aborted
    started_at: datetime.datetime
    finished_at: datetime.datetime
    error_class: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    result_summary: str | None = None
    retry: procrastinate.RetryDecision | None = None
    recorded: bool = False  # the attempt row is written (or set aside)
    set_aside: bool = False  # the attempt row could not be stored
    tries: int = 0  # writes of the status tried so far
    queue: str | None = None  # the job's queue and organization, recorded with the attempt
    organization_id: int | None = None

    @classmethod
    def of_error(cls, job_id, attempts, task_name, started, exc, status="failed", retry=None):
        """An outcome carrying ``exc``'s class, message and traceback, cleaned for storage."""
        return cls(
            job_id=job_id,
            attempts=attempts,
            task_name=task_name,
            status=status,
            started_at=started,
            finished_at=now(),
            error_class=clean(type(exc).__qualname__, 200),
            error_message=clean(
                safely(lambda: str(exc), "<a message that cannot be shown>"), MESSAGE_LIMIT
            ),
            traceback=clean(
                safely(lambda: "".join(traceback.format_exception(exc)), "<no traceback>"),
                TRACEBACK_LIMIT,
                keep_end=True,
            ),
            retry=retry,
        )

    def attempt_row(self, worker_name: str) -> tuple:
        """The ``job_attempts`` row, in ``webapp.store.attempts.COLUMNS`` order."""
        return (
            self.job_id,
            self.attempts + 1,
            worker_name,
            self.status,
            self.started_at,
            self.finished_at,
            self.error_class,
            self.error_message,
            self.traceback,
            self.result_summary,
            self.retry_at,
            self.task_name,
            self.queue,
            self.organization_id,
        )

    @property
    def retry_at(self) -> datetime.datetime | None:
        """When the job runs again; None when it does not."""
        if self.retry is None:
            return None
        return self.retry.retry_at or self.finished_at

    def bare_attempt_row(self, worker_name: str) -> tuple:
        """The same row without any text that might not store."""
        row = list(self.attempt_row(worker_name))
        row[6:10] = ["UnstorableAttemptText", None, None, None] if self.error_class else [None] * 4
        return tuple(row)

    def finish_row(self) -> tuple:
        """A row for ``webapp.store.worker.finish_jobs``."""
        retry = self.retry
        return (
            self.job_id,
            self.attempts,
            self.status,
            self.retry_at,
            retry.priority if retry else None,
            retry.queue if retry else None,
            retry.lock if retry else None,
        )


def load_job(row: dict, worker_id: int) -> procrastinate.jobs.Job:
    """A fetched row as Procrastinate's ``Job``; ``UnloadableJob`` if its arguments are not
    a JSON object Python can load."""
    try:
        kwargs = json.loads(row["args"])
    except (RecursionError, ValueError) as exc:
        raise UnloadableJob(f"its arguments cannot be loaded: {type(exc).__name__}") from None
    if not isinstance(kwargs, dict):
        raise UnloadableJob("its arguments are not a JSON object")
    return procrastinate.jobs.Job(
        id=row["id"],
        status="doing",
        queue=row["queue_name"],
        priority=row["priority"],
        lock=row["lock"],
        queueing_lock=row["queueing_lock"],
        task_name=row["task_name"],
        task_kwargs=kwargs,
        scheduled_at=row["scheduled_at"],
        attempts=row["attempts"],
        worker_id=worker_id,
    )


def organization_of(kwargs: Any) -> int | None:
    """The organization a job's arguments name, if they name one that can be stored."""
    value = kwargs.get("organization_id") if isinstance(kwargs, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
        return value
    return None


def of_job(outcome: Outcome, queue: str, kwargs: Any) -> Outcome:
    """``outcome`` with its job's queue and organization, so that writing the attempt needs
    no read of the job (which a lock on the jobs table would hold up)."""
    outcome.queue = queue
    outcome.organization_id = organization_of(kwargs)
    return outcome


def unloadable(row: dict, exc: Exception) -> Outcome:
    """The outcome of a fetched row that cannot run: failed at once, never retried."""
    started = now()
    outcome = Outcome.of_error(row["id"], row["attempts"], row["task_name"], started, exc)
    return of_job(outcome, row["queue_name"], safely(lambda: json.loads(row["args"]), None))


async def run(context: procrastinate.JobContext) -> Outcome:
    """Run the context's job to its end and return how it went; never raises."""
    job = context.job
    task = context.app.tasks.get(job.task_name)
    started = now()
    try:
        if task is None:
            raise procrastinate.exceptions.TaskNotFound(f"no task named {job.task_name!r}")
        args = [context] if task.pass_context else []
        if inspect.iscoroutinefunction(task.func):
            result = await task(*args, **job.task_kwargs)
        else:
            result = await asyncio.to_thread(task, *args, **job.task_kwargs)
    except BaseException as exc:  # a task's SystemExit or abort ends the job, not the worker
        return failure(context, task, started, exc)
    outcome = Outcome(job.id, job.attempts, job.task_name, "succeeded", started, now())
    outcome.result_summary = summarize(result)
    return of_job(outcome, job.queue, job.task_kwargs)


def may_retry(exc: BaseException, reason: AbortReason | None) -> bool:
    """An abort someone asked for is final; one for a worker shutdown may be retried."""
    if isinstance(exc, procrastinate.exceptions.JobAborted):
        return reason == AbortReason.SHUTDOWN
    if isinstance(exc, asyncio.CancelledError):
        return reason != AbortReason.USER_REQUEST
    return True


def failure(context, task, started, exc: BaseException) -> Outcome:
    """The outcome of a run that raised ``exc``: failed or aborted, maybe to be retried."""
    job = context.job
    status = "aborted" if isinstance(exc, ABORTED) else "failed"
    retry = None
    if task is not None and may_retry(exc, context.abort_reason()):
        try:
            job_retry = task.get_retry_exception(exception=exc, job=job)
            retry = job_retry.retry_decision if job_retry else None
        except Exception:
            log.exception("the retry strategy of %s failed; not retrying", job.task_name)
    outcome = Outcome.of_error(job.id, job.attempts, job.task_name, started, exc, status, retry)
    return of_job(outcome, job.queue, job.task_kwargs)


def log_outcome(outcome: Outcome) -> None:
    """A failure is worth a line (without the payload); a success only at DEBUG."""
    if outcome.status == "succeeded":
        log.debug("job %s %s succeeded", outcome.job_id, outcome.task_name)
        return
    then = f"; retry at {outcome.retry_at.isoformat(timespec='seconds')}" if outcome.retry else ""
    log.warning(
        "job %s %s %s on attempt %d: %s: %s%s",
        outcome.job_id,
        outcome.task_name,
        outcome.status,
        outcome.attempts + 1,
        outcome.error_class,
        (outcome.error_message or "").splitlines()[0] if outcome.error_message else "",
        then,
        extra={"action": "job_" + outcome.status},
    )
