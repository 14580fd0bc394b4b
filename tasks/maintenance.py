"""Periodic housekeeping, on a queue of its own, safe under any worker that runs the App.

The tasks read their settings from the environment when they run, never from a
worker's additional context, so Procrastinate's own worker runs them as well as
ours. Every change they make is conditional in SQL, so runs may repeat or overlap.
``python -m tasks.worker`` serves the housekeeping queue in a slot of its own: no
tenant's jobs, however many or long, can hold it back.
"""

import datetime
import logging
import math
import os
import time

import procrastinate

from tasks import queues
from webapp.config import housekeeping_settings
from webapp.store import maintenance as store

log = logging.getLogger(__name__)

bp = procrastinate.Blueprint()

RECOVERY_TICK_SECONDS = 10
PURGE_BATCH = 5_000
PURGE_BUDGET_SECONDS = 20.0  # one run stops here; the next run, ten minutes on, goes on
HOUSEKEEPING_RETENTION = datetime.timedelta(days=1)
MINUTES_RETENTION = datetime.timedelta(days=7)  # per-minute run counts (the sparklines)


def pool(context: procrastinate.JobContext):
    """The connection pool of the App running the task."""
    return context.app.connector.pool


def missed_ticks(stalled_after: float) -> int:
    """How many recovery ticks in a row a worker must miss to count as dead (two at least:
    a live worker may miss one while the database comes back)."""
    return max(2, math.ceil(stalled_after / RECOVERY_TICK_SECONDS))


@bp.periodic(cron=f"* * * * * */{RECOVERY_TICK_SECONDS}")
@bp.task(
    name="retry_stalled_jobs",
    queue=queues.HOUSEKEEPING,
    priority=queues.URGENT_PRIORITY,
    pass_context=True,
)
async def retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int) -> dict:
    """Recover jobs left running by dead workers, then prune those workers.

    A worker is dead once its heartbeat stood still for WORKER_STALLED_AFTER, counted in
    ticks of this task while the database answered (see ``howdah_recover_stalled_jobs``).
    A run whose outcome is on record gets that outcome; any other is recorded as lost and
    retried.
    """
    settings = housekeeping_settings(os.environ)
    silence = settings["WORKER_STALLED_AFTER"]
    ticks = missed_ticks(silence)
    async with pool(context).connection() as conn:
        recovered = await store.recover_stalled_jobs(
            conn, ticks, silence, settings["LOST_JOB_MAX_ATTEMPTS"], RECOVERY_TICK_SECONDS
        )
        pruned = await store.prune_silent_workers(conn, ticks)
    for row in recovered:
        log.warning(
            "stalled job %s of %s: %s",
            row["job_id"],
            row["worker_name"],
            row["action"],
            extra={"action": "retry_stalled_jobs"},
        )
    return {"recovered": recovered, "pruned_workers": pruned}


@bp.periodic(cron="*/10 * * * *")
@bp.task(
    name="purge_finished_jobs",
    queue=queues.HOUSEKEEPING,
    priority=queues.URGENT_PRIORITY,
    pass_context=True,
)
async def purge_finished_jobs(context: procrastinate.JobContext, timestamp: int) -> dict:
    """Delete finished jobs and their attempt records after the retention period, and
    failed sign-ins, ended sessions and SMS message records after theirs; fold the hourly
    attempt counts of /metrics into their totals.

    Housekeeping runs themselves are kept for a day. A run stops after
    ``PURGE_BUDGET_SECONDS`` so that it never holds the housekeeping slot for long.
    """
    settings = housekeeping_settings(os.environ)
    days = settings["JOB_RETENTION_DAYS"]
    now = datetime.datetime.now(datetime.UTC)
    deadline = time.monotonic() + PURGE_BUDGET_SECONDS
    deleted = await purge(context, now - datetime.timedelta(days=days), None, deadline)
    deleted += await purge(context, now - HOUSEKEEPING_RETENTION, queues.HOUSEKEEPING, deadline)
    async with pool(context).connection() as conn:
        workers = await store.delete_old_worker_records(conn, now - datetime.timedelta(days=days))
        await store.delete_old_job_minutes(conn, now - MINUTES_RETENTION)
        folded = await store.fold_attempt_counts(conn)
    sign_in_cutoff = now - datetime.timedelta(days=settings["SIGN_IN_RETENTION_DAYS"])
    sign_ins = await purge_rows(context, store.delete_old_sign_in_records, sign_in_cutoff, deadline)
    sms_cutoff = now - datetime.timedelta(days=settings["SMS_RETENTION_DAYS"])
    messages = await purge_rows(context, store.delete_old_sms_messages, sms_cutoff, deadline)
    log.info(
        "purged %d finished jobs, %d worker records, %d sign-in records and %d SMS records",
        deleted,
        workers,
        sign_ins,
        messages,
        extra={"action": "purge_finished_jobs"},
    )
    return {
        "deleted": deleted,
        "worker_records_deleted": workers,
        "sign_in_records_deleted": sign_ins,
        "sms_records_deleted": messages,
        "attempt_counts_folded": folded,
    }


async def purge_rows(context: procrastinate.JobContext, delete, cutoff, deadline: float) -> int:
    """Call ``delete(conn, cutoff, PURGE_BATCH)`` until it deletes less than a batch or
    time is up; how many rows it deleted."""
    deleted = 0
    while time.monotonic() < deadline:
        async with pool(context).connection() as conn:
            count = await delete(conn, cutoff, PURGE_BATCH)
        deleted += count
        if count < PURGE_BATCH:
            break
    return deleted


@bp.periodic(cron="* * * * *")
@bp.task(
    name="count_finished_jobs",
    queue=queues.HOUSEKEEPING,
    priority=queues.URGENT_PRIORITY,
    pass_context=True,
)
async def count_finished_jobs(context: procrastinate.JobContext, timestamp: int) -> dict:
    """Count finished jobs by queue, organization and state for the admin overview, which
    shows these counts with their time; waiting and running jobs it counts itself."""
    async with pool(context).connection() as conn, conn.transaction():
        await store.count_finished_jobs(conn)
        await store.delete_uncounted_states(conn)
    return {"counted_at": datetime.datetime.now(datetime.UTC).isoformat()}


async def purge(
    context: procrastinate.JobContext,
    cutoff: datetime.datetime,
    queue: str | None,
    deadline: float,
) -> int:
    """Delete finished jobs older than ``cutoff`` in batches, until none is left or time is up."""

    async def delete(conn, cutoff, limit):
        return await store.delete_finished_jobs(conn, cutoff, limit, queue)

    return await purge_rows(context, delete, cutoff, deadline)
