"""How Howdah tasks are declared: payload model, queue, retry policy, priority, time limit.

``job_task`` wraps an async function ``fn(payload, context)`` into a
Procrastinate task that validates its arguments with the payload model and
stops at the time limit, and hangs its ``TaskSpec`` on the task. Every task
declared this way may be deferred through the API: ``deferrable(app)`` finds them
in the App's own task registry, so what runs and what may be deferred are one list.
"""

import asyncio
import functools
from dataclasses import dataclass, field
from typing import Any

import procrastinate
import pydantic
from procrastinate import JobContext
from procrastinate.job_context import AbortReason

from tasks import progress
from tasks.payloads import JobPayload


class NotRetryable(Exception):
    """A failure that running the job again cannot mend: ``Backoff`` never retries it."""


class InvalidPayload(NotRetryable):
    """A job's arguments do not match its task's payload model; retrying cannot help."""


class TryLater(Exception):
    """Not a failure of the job: it should run again in ``retry_after`` seconds, whatever
    its retries so far (a rate limit of our own, say). Procrastinate still counts the run
    as an attempt, so it leaves fewer retries to a later failure."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class TimeLimitExceeded(Exception):
    """A job ran past its task's time limit."""


@dataclass(frozen=True)
class Backoff(procrastinate.BaseRetryStrategy):
    """Exponential backoff with a cap: base, 2*base, 4*base, ... at most ``cap`` seconds.

    An exception with a ``retry_after`` (seconds a provider asked us to wait, from its
    Retry-After header) waits that long if it is longer than the backoff's delay, even
    beyond ``cap``: retrying sooner only earns another refusal and spends a retry. It is
    bounded by ``retry_after_cap`` all the same, so a huge or bogus value cannot park a job
    for days. ``NotRetryable`` is never retried; ``TryLater`` always is, whatever the
    retries so far.
    """

    max_retries: int = 5
    base: float = 2.0
    cap: float = 300.0
    retry_after_cap: float = 3600.0

    def delay(self, retries_done: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retries_done + 1``."""
        delay = min(self.cap, self.base * 2**retries_done)
        if retry_after is not None and retry_after > delay:
            delay = min(self.retry_after_cap, retry_after)
        return delay

    def get_retry_decision(
        self, *, exception: BaseException, job: procrastinate.jobs.Job
    ) -> procrastinate.RetryDecision | None:
        if isinstance(exception, TryLater):
            seconds = min(self.retry_after_cap, max(0.0, exception.retry_after))
            return procrastinate.RetryDecision(retry_in={"seconds": seconds})
        if isinstance(exception, NotRetryable) or job.attempts >= self.max_retries:
            return None
        retry_after = getattr(exception, "retry_after", None)
        if not isinstance(retry_after, int | float) or isinstance(retry_after, bool):
            retry_after = None
        return procrastinate.RetryDecision(
            retry_in={"seconds": self.delay(job.attempts, retry_after)}
        )

    def describe(self) -> dict:
        return {"max_retries": self.max_retries, "base_seconds": self.base, "cap_seconds": self.cap}


@dataclass(frozen=True)
class TaskSpec:
    """A deferrable task and its defaults."""

    task: procrastinate.tasks.Task
    payload: type[JobPayload]
    queue: str
    priority: int
    time_limit: float
    retry: Backoff
    description: str = field(default="")
    platform_only: bool = False  # deferrable by platform admins and tokens only

    @property
    def name(self) -> str:
        """The full task name, with its namespace once the App has added it."""
        return self.task.name

    def describe(self) -> dict:
        """What GET /api/v1/tasks shows."""
        return {
            "name": self.name,
            "description": self.description,
            "queue": self.queue,
            "priority": self.priority,
            "time_limit_seconds": self.time_limit,
            "retry": self.retry.describe(),
            "platform_only": self.platform_only,
            "payload_schema": self.payload.model_json_schema(),
        }


SPEC_ATTRIBUTE = "howdah_spec"


def job_task(
    bp: procrastinate.Blueprint,
    *,
    name: str,
    payload: type[JobPayload],
    queue: str,
    priority: int = 0,
    time_limit: float = 60.0,
    retry: Backoff | None = None,
    platform_only: bool = False,
):
    """Declare an async task taking a validated payload; see the module docstring."""
    retry = retry or Backoff()

    def decorator(fn):
        @functools.wraps(fn)
        async def run(context: JobContext, **kwargs: Any):
            try:
                data = payload.model_validate(kwargs)
            except pydantic.ValidationError as exc:
                raise InvalidPayload(str(exc)) from None
            deadline = asyncio.timeout(time_limit)
            try:
                async with deadline:
                    return await fn(data, context)
            except TimeoutError:
                if not deadline.expired():
                    raise  # a timeout inside the task (a provider's, say), not ours
                raise TimeLimitExceeded(
                    f"{context.job.task_name} exceeded its {time_limit:g} s time limit"
                ) from None
            except asyncio.CancelledError:
                # Procrastinate cancels an async job to abort it. An abort someone asked
                # for ends the job as aborted; one from a worker shutdown may be retried.
                if context.abort_reason() == AbortReason.USER_REQUEST:
                    raise procrastinate.exceptions.JobAborted("aborted on request") from None
                raise
            finally:
                # The last progress reported lands before the job's outcome is written.
                await progress.flush(context)

        task = bp.task(name=name, queue=queue, priority=priority, retry=retry, pass_context=True)(
            run
        )
        spec = TaskSpec(
            task,
            payload,
            queue,
            priority,
            time_limit,
            retry,
            next(iter((fn.__doc__ or "").strip().splitlines()), ""),  # first line
            platform_only,
        )
        setattr(task, SPEC_ATTRIBUTE, spec)
        return task

    return decorator


def spec_of(task: procrastinate.tasks.Task) -> TaskSpec | None:
    """The spec ``job_task`` gave this task; None for a task declared otherwise."""
    return getattr(task, SPEC_ATTRIBUTE, None)


def deferrable(registry: procrastinate.Blueprint, platform: bool = True) -> dict[str, TaskSpec]:
    """The tasks of ``registry`` (an App or a Blueprint) declared with ``job_task``, by
    full name; for a tenant's caller (``platform`` false), those not platform-only."""
    specs = (spec_of(task) for task in registry.tasks.values())
    return {
        spec.name: spec
        for spec in specs
        if spec is not None and (platform or not spec.platform_only)
    }
