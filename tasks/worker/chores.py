"""A running worker's side work: abort polling, periodic deferral, reconciliation, heartbeat.

Each loop runs for the worker's whole life and waits out database outages through
``Availability.trying``; only an error that is not an outage ends it, and with it
the worker.
"""

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import psycopg
from procrastinate import periodic
from procrastinate.job_context import AbortReason

from tasks.worker.availability import BackoffTimer, describe, is_outage, unwrap
from webapp.store import worker as store

if TYPE_CHECKING:
    from tasks.worker.runner import Worker

log = logging.getLogger("tasks.worker")

RECONCILE_EVERY = 10.0


async def poll_aborts(worker: "Worker") -> None:
    """Every poll interval, look for abort requests among the worker's running jobs.

    Notifications bring most of them at once; the poll catches any that were missed.
    """
    backoff = BackoffTimer()
    while True:
        await asyncio.sleep(worker.settings.poll_interval)
        candidates = [i for i in worker.known_running_ids() if i not in worker.abort_reasons]
        if not candidates:
            worker.availability.recovered("abort poll")  # nothing to ask the database
            continue
        to_abort: list[int] = []
        async with (
            worker.availability.trying("abort poll", backoff),
            worker.pool.connection() as conn,
        ):
            to_abort = await store.list_jobs_to_abort(conn, candidates)
        for job_id in to_abort:
            worker.abort(job_id, AbortReason.USER_REQUEST)


async def defer_periodic(worker: "Worker") -> None:
    """Procrastinate's periodic deferrer, started afresh after each database failure
    (a fresh one defers the latest tick again; the database refuses repeats)."""
    registry = worker.app.periodic_registry
    if not registry.periodic_tasks:
        await worker.stopping.wait()
        return
    backoff = BackoffTimer()
    deferrer = None
    while True:
        deferrer = deferrer or periodic.PeriodicDeferrer(
            registry=registry, **worker.app.periodic_defaults
        )
        at = time.time()
        async with worker.availability.trying("periodic deferrer", backoff) as attempt:
            await deferrer.defer_jobs(list(deferrer.get_previous_tasks(at=at)))
        if not attempt.ok:
            deferrer = None
            continue
        await asyncio.sleep(deferrer.get_next_tick(at=at) + periodic.MARGIN)


async def reconcile_periodically(worker: "Worker") -> None:
    """Every ``RECONCILE_EVERY`` seconds, hand back jobs taken but never started.

    It does not report to ``Availability``: running only every few seconds, it would
    hold the "back" line after an outage; a failure leaves the work to the next fetch.
    """
    while True:
        await asyncio.sleep(RECONCILE_EVERY)
        try:
            async with worker.fetch_lock, worker.pool.connection() as conn:
                await reconcile(worker, conn)
        except Exception as exc:
            if not isinstance(unwrap(exc), psycopg.Error) and not is_outage(exc):
                raise
            log.debug("reconciliation failed: %s", describe(exc))
            worker.needs_reconcile = True  # the next fetch tries first


async def reconcile(worker: "Worker", conn: psycopg.AsyncConnection) -> None:
    """Hand back jobs the database has running on this worker that it never started.

    They come from a fetch that committed while its reply was lost. The caller holds
    ``worker.fetch_lock``, so no fetch is between committing and starting its jobs.
    """
    ids = await store.list_running_job_ids(conn, worker.worker_id)
    known = worker.known_job_ids()
    orphans = [job_id for job_id in ids if job_id not in known]
    released = await store.release_jobs(conn, worker.worker_id, orphans) if orphans else []
    if released:  # an orphan may have been finished meanwhile by its own write
        log.warning(
            "handed back %d jobs taken by a fetch whose reply was lost: %s",
            len(released),
            released,
            extra={"action": "jobs_released"},
        )
    worker.needs_reconcile = False


async def beat(worker: "Worker", conn: psycopg.AsyncConnection) -> None:
    """The heartbeat. If this worker's row is gone, register it again."""
    if await store.beat(conn, worker.worker_id):
        return
    async with worker.fetch_lock:
        await register_again(worker, conn)


async def register_again(worker: "Worker", conn: psycopg.AsyncConnection) -> None:
    """Register anew after this worker's row was pruned (it was taken for dead during an
    outage), and put the new id on the jobs it still runs. The caller holds
    ``worker.fetch_lock``, so no fetch uses the old id meanwhile."""
    old = worker.worker_id
    worker.worker_id = await worker.register_on(conn)
    await store.claim_jobs(conn, worker.worker_id, sorted(worker.known_job_ids()))
    log.warning(
        "worker row %s was removed while this worker was cut off; registered again as %s",
        old,
        worker.worker_id,
        extra={"action": "worker_reregistered"},
    )
