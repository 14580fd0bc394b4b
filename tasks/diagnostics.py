"""Diagnostic tasks for checking a deployment, for tests and for benchmarks.

They are platform-only: a tenant could otherwise hold worker slots with sleeps.
"""

import asyncio
import time

import procrastinate

from tasks import queues
from tasks.payloads import FlakyPayload, NoopPayload, SleepPayload, StepsPayload
from tasks.progress import report_progress
from tasks.registry import Backoff, job_task

bp = procrastinate.Blueprint()


class PlannedFailure(Exception):
    """Raised on purpose by fail_then_succeed."""


@job_task(
    bp,
    name="noop",
    payload=NoopPayload,
    queue=queues.DEFAULT,
    retry=Backoff(max_retries=0),
    platform_only=True,
)
async def noop(payload: NoopPayload, context: procrastinate.JobContext) -> None:
    """Do nothing: proves a job goes from the API through a worker."""


@job_task(
    bp,
    name="sleep",
    payload=SleepPayload,
    queue=queues.DEFAULT,
    time_limit=3600,
    retry=Backoff(max_retries=0),
    platform_only=True,
)
async def sleep(payload: SleepPayload, context: procrastinate.JobContext) -> dict:
    """Sleep for the given seconds, stopping early when the job is aborted."""
    deadline = time.monotonic() + payload.seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if context.should_abort():
            raise procrastinate.exceptions.JobAborted("abort requested")
        await asyncio.sleep(min(remaining, 0.1))
    return {"slept_seconds": payload.seconds}


@job_task(
    bp,
    name="work_in_steps",
    payload=StepsPayload,
    queue=queues.DEFAULT,
    time_limit=3600,
    retry=Backoff(max_retries=0),
    platform_only=True,
)
async def work_in_steps(payload: StepsPayload, context: procrastinate.JobContext) -> dict:
    """Sleep step by step, reporting progress after each step."""
    for step in range(1, payload.steps + 1):
        await asyncio.sleep(payload.seconds_per_step)
        report_progress(context, step / payload.steps, f"step {step} of {payload.steps}")
    return {"steps": payload.steps}


@job_task(
    bp,
    name="fail_then_succeed",
    payload=FlakyPayload,
    queue=queues.DEFAULT,
    retry=Backoff(max_retries=3, base=0.25, cap=2),
    platform_only=True,
)
async def fail_then_succeed(payload: FlakyPayload, context: procrastinate.JobContext) -> dict:
    """Fail the first N attempts, then succeed."""
    attempt = context.job.attempts + 1
    if attempt <= payload.failures:
        raise PlannedFailure(f"planned failure {attempt} of {payload.failures}")
    return {"succeeded_on_attempt": attempt}
