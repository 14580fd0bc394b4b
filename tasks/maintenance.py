"""Periodic housekeeping, run by the workers (no lock: every run is safe to repeat)."""

import datetime
import logging

import procrastinate
import psycopg

from tasks import queues
from webapp.store import maintenance as store

log = logging.getLogger(__name__)

bp = procrastinate.Blueprint()

PURGE_BATCH = 5_000


def settings(context: procrastinate.JobContext) -> dict:
    """The worker's settings, handed to every job as additional context."""
    return context.additional_context["settings"]


@bp.periodic(cron="* * * * * */10")
@bp.task(name="retry_stalled_jobs", queue=queues.DEFAULT, pass_context=True)
async def retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int) -> dict:
    """Re-queue jobs left in ``doing`` by workers whose heartbeat went silent.

    Each change applies only if the job is still running on the silent worker, so an
    overlapping run cannot re-queue a job another worker has taken since.
    """
    config = settings(context)
    stalled = await context.app.job_manager.get_stalled_jobs(
        seconds_since_heartbeat=config["WORKER_STALLED_AFTER"]
    )
    retried, failed = [], []
    for job in stalled:
        give_up = job.attempts + 1 >= config["LOST_JOB_MAX_ATTEMPTS"]
        try:
            async with context.app.connector.pool.connection() as conn, conn.transaction():
                change = store.fail_stalled_job if give_up else store.retry_stalled_job
                if await change(conn, job.id, job.worker_id):
                    await store.insert_lost_attempt(conn, job.id, job.attempts + 1, job.worker_id)
                    (failed if give_up else retried).append(job.id)
        except psycopg.Error:  # e.g. its queueing lock is taken again: the others go on
            log.exception(
                "could not recover stalled job %s", job.id, extra={"action": "retry_stalled_jobs"}
            )
    if stalled:
        log.warning(
            "stalled jobs: retried %s, failed %s",
            retried,
            failed,
            extra={"action": "retry_stalled_jobs"},
        )
    return {"retried": retried, "failed": failed}


@bp.periodic(cron="17 * * * *")
@bp.task(name="purge_finished_jobs", queue=queues.DEFAULT, pass_context=True)
async def purge_finished_jobs(context: procrastinate.JobContext, timestamp: int) -> dict:
    """Delete finished jobs, and their attempt records, older than the retention period."""
    days = settings(context)["JOB_RETENTION_DAYS"]
    cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days)
    deleted = 0
    while True:
        async with context.app.connector.pool.connection() as conn:
            count = await store.delete_finished_jobs(conn, cutoff, PURGE_BATCH)
        deleted += count
        if count < PURGE_BATCH:
            break
    log.info(
        "purged %d finished jobs older than %d days",
        deleted,
        days,
        extra={"action": "purge_finished_jobs"},
    )
    return {"deleted": deleted}
