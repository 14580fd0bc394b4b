"""Writing finished runs to the database: outcome first, then status, until both land.

Outcomes wait here in memory, and two writer tasks take whatever has gathered (so
under load one statement carries many jobs, as River's batch completer does):

1. the recorder writes the attempt rows, outcome and retry time included, to
   ``job_attempts``;
2. the finisher applies recorded outcomes to the jobs, each only while the job is
   still on that run.

They run apart, so a finisher stuck behind a lock on Procrastinate's tables never
holds up the recorder: when the worker stops before a status lands, the outcome is on
record, and stalled-job recovery applies it rather than running the job again. While
the database is away, everything is kept and retried with backoff. A row that fails on
its own (not an outage) is retried alone and, if it still fails, set aside with a
warning, so it never blocks the others.
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
RECORD, FINISH = "record", "finish"


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
        self._pending: list[Outcome] = []  # every outcome whose status is not written yet
        self._to_record = asyncio.Event()
        self._to_apply = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, outcome: Outcome) -> None:
        """Queue an outcome for writing."""
        self._pending.append(outcome)
        self._idle.clear()
        self._to_record.set()

    def pending_job_ids(self) -> set[int]:
        """Jobs whose status this worker has still to write (they are still its own)."""
        return {outcome.job_id for outcome in self._pending}

    async def run(self) -> None:
        """Record and apply outcomes as they come, for ever (cancelled at shutdown)."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._record_loop())
            group.create_task(self._apply_loop())

    async def drain(self, timeout: float) -> list[Outcome]:
        """Wait up to ``timeout`` seconds for every outcome to be written; return the rest."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return list(self._pending)

    async def _record_loop(self) -> None:
        backoff = BackoffTimer()
        while True:
            await self._to_record.wait()
            self._to_record.clear()
            while batch := [o for o in self._pending if not o.recorded][:MAX_BATCH]:
                async with self.availability.trying(RECORD, backoff) as attempt:
                    await self._record(batch)
                if attempt.ok:
                    self._to_apply.set()

    async def _apply_loop(self) -> None:
        backoff = BackoffTimer()
        while True:
            await self._to_apply.wait()
            self._to_apply.clear()
            while batch := [o for o in self._pending if o.recorded][:MAX_BATCH]:
                async with self.availability.trying(FINISH, backoff) as attempt:
                    await self._finish(batch)
                if attempt.ok:
                    self.on_written()

    async def _finish(self, batch: list[Outcome]) -> None:
        """Apply the batch's statuses, then drop it from pending."""
        for outcome in batch:
            outcome.tries += 1
        applied = await self._apply(sorted(batch, key=lambda o: o.job_id))
        written = {id(outcome) for outcome in batch}
        self._pending = [o for o in self._pending if id(o) not in written]
        if not self._pending:
            self._idle.set()
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
        outcome.set_aside = True

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
        """Write one status. A retry that will not store becomes a failure; a status that
        Procrastinate's function cannot write at all, a plain failure; else set aside."""
        while True:
            try:
                return await self._execute(store.finish_jobs, [outcome.finish_row()])
            except psycopg.Error as exc:
                if is_outage(exc):
                    raise
                problem = describe(exc)
            if outcome.retry is None:
                break
            log.warning(
                "job %s: its retry cannot be stored (%s); failing it instead",
                outcome.job_id,
                problem,
                extra={"action": "retry_set_aside"},
            )
            outcome.retry = None
        log.error(
            "job %s: could not write its status %s (%s); marking it failed",
            outcome.job_id,
            outcome.status,
            problem,
            extra={"action": "finish_set_aside"},
        )
        try:
            failed = await self._execute(store.fail_job, outcome.job_id, outcome.attempts)
        except psycopg.Error as exc:
            if is_outage(exc):
                raise
            log.error("job %s: could not fail it either: %s", outcome.job_id, describe(exc))
            return {outcome.job_id: False}
        return {outcome.job_id: failed}

    async def _execute(self, statement, *args):
        async with self.pool.connection() as conn:
            return await statement(conn, *args)

    def _moved_on(self, outcome: Outcome) -> None:
        # After a write whose reply was lost, the retry finds its own change: no news.
        level = logging.DEBUG if outcome.tries > 1 else logging.WARNING
        log.log(
            level,
            "job %s was no longer on this run when its outcome (%s) was written;"
            " its status was left as it was%s",
            outcome.job_id,
            outcome.status,
            "" if outcome.set_aside else ", and the attempt is on record",
            extra={"action": "finish_skipped"},
        )
