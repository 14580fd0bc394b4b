"""Bulk actions on more than 1,000 jobs, in batches, in the background.

A run works through batches for ``RUN_BUDGET_SECONDS`` at most, then defers its own
continuation and ends: it shares the housekeeping slot (it is Howdah's own work, never a
tenant's), and the periodic housekeeping tasks, more urgent, get the slot in between.
Runs of one bulk action share a lock, so only one of them runs at a time. Each batch
commits with its progress; a run that fails is retried, and one whose worker died is
recovered as any stalled job, and goes on from the last batch that committed.
"""

import logging
import time

import procrastinate

from tasks import queues
from tasks.maintenance import pool
from webapp.store import bulk_actions as store
from webapp.store import job_search

log = logging.getLogger(__name__)

bp = procrastinate.Blueprint()

NAME = "admin:apply_bulk_action"
BATCH_SIZE = 500
RUN_BUDGET_SECONDS = 10.0
MAX_RETRIES = 3


def lock_of(bulk_id: int) -> str:
    """The lock every run of a bulk action holds, so that runs never overlap."""
    return f"bulk:{bulk_id}"


def platform_tasks() -> list[str]:
    """Tasks that only a platform admin's bulk retry may run again."""
    from tasks.app import deferrable  # here: tasks.app imports this module

    return sorted(name for name, spec in deferrable().items() if spec.platform_only)


async def run_batches(conn, bulk_id: int, deadline: float, batch_size: int = BATCH_SIZE) -> bool:
    """Apply batches until the bulk action ends (True) or ``deadline`` passes (False)."""
    while True:
        async with conn.transaction():
            row = await store.lock_bulk_action(conn, bulk_id)
            if row is None or row["status"] != "running":
                return True  # done, or cancelled between batches
            barred = [] if row["platform"] else platform_tasks()
            selection = store.selection(row)
            if not row["counted"]:  # the preview counted up to its cap: count them all now
                left = await job_search.count_jobs(conn, selection)
                await store.record_total(conn, bulk_id, left + row["done"] + row["skipped"])
            batch = await store.apply_batch_async(
                conn, row["action"], selection, batch_size, barred
            )
            finished = batch["seen"] < batch_size
            await store.record_progress(conn, bulk_id, batch, finished)
        if finished:
            return True
        if time.monotonic() >= deadline:
            return False


@bp.task(
    name="apply_bulk_action",
    queue=queues.HOUSEKEEPING,
    pass_context=True,
    retry=procrastinate.RetryStrategy(max_attempts=MAX_RETRIES, wait=5),
)
async def apply_bulk_action(context: procrastinate.JobContext, bulk_id: int) -> dict:
    """Cancel, retry or delete the jobs of a bulk action, a batch at a time."""
    deadline = time.monotonic() + RUN_BUDGET_SECONDS
    try:
        async with pool(context).connection() as conn:
            finished = await run_batches(conn, bulk_id, deadline)
    except Exception as exc:
        if context.job.attempts >= MAX_RETRIES:  # the last try: the row says why it ended
            async with pool(context).connection() as conn:
                await store.fail_bulk_action(conn, bulk_id, f"{type(exc).__name__}: {exc}")
        raise
    if not finished:
        await context.app.configure_task(
            NAME, lock=lock_of(bulk_id), task_kwargs={"bulk_id": bulk_id}
        ).defer_async()
        log.info("bulk action %s goes on in a new run", bulk_id, extra={"action": "bulk"})
    return {"bulk_id": bulk_id, "finished": finished}
