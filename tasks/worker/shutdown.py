"""Stopping a worker: no new jobs, running ones end or are aborted, outcomes written.

The order matters. Fetchers stop first; running jobs get ``--shutdown-timeout``, then
are aborted (reason: shutdown, so their retry policy may run them again). Their
outcomes get ``FINISH_GRACE`` to be written; only then does the worker unregister,
and it keeps its heartbeat until that moment, so no live job looks stalled. An
outcome that still cannot be written stays with the worker's row, whose silence
hands the job to stalled-job recovery.
"""

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from procrastinate.job_context import AbortReason

from tasks.worker import chores
from tasks.worker.availability import describe
from webapp.store import worker as store

if TYPE_CHECKING:
    from tasks.worker.runner import Worker

log = logging.getLogger("tasks.worker")

ABORT_GRACE = 5.0  # for aborted jobs to end
FINISH_GRACE = 10.0  # for outcomes to be written
FORCED_FINISH_GRACE = 2.0  # after a second stop request
UNREGISTER_TIMEOUT = 3.0


async def shut_down(
    worker: "Worker", feeders: list[asyncio.Task], side: list[asyncio.Task]
) -> None:
    """Stop taking jobs, let running ones end, write their outcomes, then unregister."""
    deadline = time.monotonic() + worker.settings.shutdown_timeout
    await stop_feeding(worker, feeders, deadline)
    await end_running_jobs(worker, deadline)
    grace = FORCED_FINISH_GRACE if worker.forced.is_set() else FINISH_GRACE
    left = await worker.completer.drain(grace)
    if left:
        log.error(
            "stopping with %d job statuses unwritten; stalled-job recovery will apply the"
            " outcomes on record (jobs %s) and run the others again (jobs %s)",
            len(left),
            [o.job_id for o in left if o.recorded],
            [o.job_id for o in left if not o.recorded],
            extra={"action": "finish_left"},
        )
    else:
        await bounded(unregister(worker))
    for task in side:
        task.cancel()
    await asyncio.gather(*side, return_exceptions=True)
    log.info("worker %s stopped", worker.settings.name, extra={"action": "worker_stop"})


async def stop_feeding(worker: "Worker", feeders: list[asyncio.Task], deadline: float) -> None:
    """Let the fetchers end; one stuck behind a lock is cancelled (and may have taken jobs)."""
    await wait_until(worker, feeders, deadline)
    for feeder in feeders:
        if not feeder.done():
            feeder.cancel()
            worker.needs_reconcile = True


async def end_running_jobs(worker: "Worker", deadline: float) -> None:
    """Let running jobs finish until ``deadline``, then abort the rest."""
    await wait_until(worker, [r.task for r in worker.running.values()], deadline)
    if not worker.running:
        return
    log.warning(
        "aborting %d jobs still running at shutdown: %s",
        len(worker.running),
        sorted(worker.known_running_ids()),
        extra={"action": "worker_abort_running"},
    )
    for job_id in worker.known_running_ids():
        worker.abort(job_id, AbortReason.SHUTDOWN)
    await asyncio.wait([r.task for r in worker.running.values()], timeout=ABORT_GRACE)


async def unregister(worker: "Worker") -> None:
    """Hand back what a cancelled fetch took, and leave Procrastinate's worker table."""
    async with worker.fetch_lock, worker.pool.connection() as conn:
        if worker.needs_reconcile:
            await chores.reconcile(worker, conn)
        await store.unregister_worker(conn, worker.worker_id)
        await store.mark_worker_stopped(conn, worker.worker_id)


async def bounded(coroutine) -> None:
    """Best effort at shutdown: a failure or a wait past the limit is logged, not fatal."""
    try:
        await asyncio.wait_for(coroutine, UNREGISTER_TIMEOUT)
    except Exception as exc:
        log.warning("could not unregister the worker: %s", describe(exc))


async def wait_until(worker: "Worker", tasks: list[asyncio.Task], deadline: float) -> None:
    """Wait for ``tasks`` until ``deadline``, or until a second stop request."""
    pending = {task for task in tasks if not task.done()}
    forced = asyncio.create_task(worker.forced.wait())
    try:
        while pending and not worker.forced.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            _, pending = await asyncio.wait(
                pending | {forced}, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            pending.discard(forced)
    finally:
        forced.cancel()
