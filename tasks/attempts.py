"""The worker middleware that puts every attempt on record in ``job_attempts``.

A failure is written at once, before Procrastinate records the job's new
status, with its error class, message and traceback. Successes are buffered
and written in one statement every ``flush_interval`` seconds (and on
shutdown), which keeps the success path cheap. Times, attempt counts and
statuses are also in Procrastinate's events, so a worker killed between
flushes loses only the worker name and result summary of its last successes.
"""

import asyncio
import contextlib
import datetime
import json
import logging
import traceback

import procrastinate
import psycopg
import psycopg_pool

from webapp.store import attempts as store

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2_000
TRACEBACK_LIMIT = 64_000
RESULT_LIMIT = 2_000
ABORTED = (procrastinate.exceptions.JobAborted, asyncio.CancelledError)


def summarize(result) -> str | None:
    """A short JSON (or repr) rendering of a task's return value."""
    if result is None:
        return None
    try:
        text = json.dumps(result, default=str, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(result)
    return text[:RESULT_LIMIT]


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class AttemptRecorder:
    """``worker_middleware`` for Procrastinate's worker; see the module docstring."""

    def __init__(
        self,
        pool: psycopg_pool.AsyncConnectionPool,
        worker_name: str,
        flush_interval: float = 0.2,
        max_batch: int = 500,
    ):
        self.pool = pool
        self.worker_name = worker_name
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self._pending: list[tuple] = []

    async def __call__(self, call_next, context: procrastinate.JobContext, worker):
        job = context.job
        started = now()
        try:
            result = await call_next()
        except BaseException as exc:
            outcome = "aborted" if isinstance(exc, ABORTED) else "failed"
            try:
                await self._write([self._row(job, started, outcome, exc=exc)])
            except (psycopg.Error, psycopg_pool.PoolTimeout):
                # Keep the task's own exception: it decides whether the job is retried.
                log.warning(
                    "could not record failed attempt of job %s",
                    job.id,
                    exc_info=True,
                    extra={"action": "attempt_record_failed"},
                )
            raise
        self._pending.append(self._row(job, started, "succeeded", result=result))
        if len(self._pending) >= self.max_batch:
            await self.flush()
        return result

    def _row(self, job, started, outcome, *, exc=None, result=None) -> tuple:
        error_class = message = trace = None
        if exc is not None:
            error_class = type(exc).__qualname__
            message = str(exc)[:MESSAGE_LIMIT]
            trace = "".join(traceback.format_exception(exc))[-TRACEBACK_LIMIT:]
        return (
            job.id,
            job.attempts + 1,
            self.worker_name,
            outcome,
            started,
            now(),
            error_class,
            message,
            trace,
            summarize(result),
        )

    async def flush(self) -> None:
        """Write the buffered successes; on a database error keep them for the next try."""
        rows, self._pending = self._pending, []
        if rows:
            try:
                await self._write(rows)
            except (psycopg.Error, psycopg_pool.PoolTimeout):
                log.warning(
                    "could not record %d attempts; will retry",
                    len(rows),
                    exc_info=True,
                    extra={"action": "attempts_flush_failed"},
                )
                self._pending[:0] = rows

    async def _write(self, rows: list[tuple]) -> None:
        async with self.pool.connection() as conn:
            await store.insert_attempts(conn, rows)

    async def run(self, stopped: asyncio.Event) -> None:
        """Flush every ``flush_interval`` until ``stopped`` is set, then flush once more."""
        while not stopped.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), self.flush_interval)
            await self.flush()
