"""Writing finished runs to the database: outcome first, then status, until both land.

Outcomes wait here in memory. A writer task takes whatever has gathered (so under
load one statement carries many jobs, as River's batch completer does) and writes,
in two transactions:

1. the attempt rows, outcome and retry time included, in ``job_attempts``;
2. the jobs' new statuses, each applied only while the job is still on this run.

Step 1 never waits on a lock on Procrastinate's tables, so even when step 2 cannot
land before the worker stops, the outcome is on record and stalled-job recovery
applies it rather than running the job again. While the database is away, the writer
keeps everything and retries with backoff. A row that fails on its own (not an
outage) is retried alone and, if it still fails, set aside with a warning, so it
never blocks the others.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg
import psycopg_pool

from tasks.worker.availability import Availability, BackoffTimer, describe, is_outage
from tasks.worker.execution import Outcome
from webapp.store import attempts as attempts_store
from webapp.store import worker as store

log = logging.getLogger("tasks.worker")

MAX_BATCH = 1_000
PART = "finish"


class Completer:
    """See the module docstring."""

    def __init__(
        self,
        pool: psycopg_pool.AsyncConnectionPool,
        availability: Availability,
        worker_name: str,
        on_written: Callable[[], None] = lambda: None,
    ):
        self.pool = pool
        self.availability = availability
        self.worker_name = worker_name
        self.on_written = on_written
        self._pending: list[Outcome] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, outcome: Outcome) -> None:
        """Queue an outcome for writing."""
        self._pending.append(outcome)
        self._idle.clear()
        self._wake.set()

    def pending_job_ids(self) -> set[int]:
        """Jobs whose status this worker has still to write (they are still its own)."""
        return {outcome.job_id for outcome in self._pending}

    async def run(self) -> None:
        """Write outcomes as they come, for ever (cancelled at shutdown)."""
        backoff = BackoffTimer()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                async with self.availability.trying(PART, backoff) as attempt:
                    await self.write(self._pending[:MAX_BATCH])
                if attempt.ok:
                    self.on_written()
            self._idle.set()

    async def drain(self, timeout: float) -> list[Outcome]:
        """Wait up to ``timeout`` seconds for every outcome to be written; return the rest."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return list(self._pending)

    async def write(self, batch: list[Outcome]) -> None:
        """Record the batch's attempts, then apply its statuses, then drop it from pending."""
        unrecorded = [outcome for outcome in batch if not outcome.recorded]
        if unrecorded:
            await self._record(unrecorded)
        for outcome in batch:
            outcome.tries += 1
        applied = await self._apply(sorted(batch, key=lambda o: o.job_id))
        written = {id(outcome) for outcome in batch}
        self._pending = [o for o in self._pending if id(o) not in written]
        for outcome in batch:
            if not applied.get(outcome.job_id, True):
                self._moved_on(outcome)

    async def _record(self, outcomes: list[Outcome]) -> None:
        rows = [outcome.attempt_row(self.worker_name) for outcome in outcomes]
        try:
            await self._execute(attempts_store.insert_attempts, rows)
        except psycopg.Error as exc:
            if is_outage(exc):
                raise
            for outcome in outcomes:  # find the row at fault, write the others
                await self._record_alone(outcome)
        for outcome in outcomes:
            outcome.recorded = True

    async def _record_alone(self, outcome: Outcome) -> None:
        """Write one attempt row; if it will not store, without its texts; else set it aside."""
        for row in (
            outcome.attempt_row(self.worker_name),
            outcome.bare_attempt_row(self.worker_name),
        ):
            try:
                await self._execute(attempts_store.insert_attempts, [row])
                return
            except psycopg.Error as exc:
                if is_outage(exc):
                    raise
                log.warning(
                    "could not record attempt %d of job %s: %s",
                    outcome.attempts + 1,
                    outcome.job_id,
                    describe(exc),
                    extra={"action": "attempt_set_aside"},
                )

    async def _apply(self, outcomes: list[Outcome]) -> dict[int, bool]:
        try:
            return await self._execute(store.finish_jobs, [o.finish_row() for o in outcomes])
        except psycopg.Error as exc:
            if is_outage(exc):
                raise
        applied = {}
        for outcome in outcomes:  # find the row at fault, write the others
            applied.update(await self._apply_alone(outcome))
        return applied

    async def _apply_alone(self, outcome: Outcome) -> dict[int, bool]:
        """Write one status; a retry that will not store becomes a failure; else set aside."""
        while True:
            try:
                return await self._execute(store.finish_jobs, [outcome.finish_row()])
            except psycopg.Error as exc:
                if is_outage(exc):
                    raise
                if outcome.retry is None:
                    log.error(
                        "job %s: could not write its status %s: %s",
                        outcome.job_id,
                        outcome.status,
                        describe(exc),
                        extra={"action": "finish_set_aside"},
                    )
                    return {outcome.job_id: False}
                log.warning(
                    "job %s: its retry cannot be stored (%s); failing it instead",
                    outcome.job_id,
                    describe(exc),
                    extra={"action": "retry_set_aside"},
                )
                outcome.retry = None

    async def _execute(self, statement, rows):
        async with self.pool.connection() as conn:
            return await statement(conn, rows)

    def _moved_on(self, outcome: Outcome) -> None:
        # After a write whose reply was lost, the retry finds its own change: no news.
        level = logging.DEBUG if outcome.tries > 1 else logging.WARNING
        log.log(
            level,
            "job %s was no longer on this run when its outcome (%s) was written;"
            " its attempt is on record, its status was left as it was",
            outcome.job_id,
            outcome.status,
            extra={"action": "finish_skipped"},
        )
