"""How a running task tells how far it has come: ``report_progress(context, fraction, message)``.

A report only notes the value in memory, so a task may report as often as it likes (for
every item of a loop) and never waits for the database. A writer of the job's own runs
in the background and writes the latest value at most every ``INTERVAL`` seconds, with
a connection it takes from the worker's pool for that one statement. Tasks declared
with ``job_task`` write their last value before the job ends (``flush``), so the final
report always lands. Reporting never fails a job: a database error is logged once per
run and the value is dropped. Only a value that is not progress (a bug in the task)
raises, at the call.
"""

import asyncio
import contextlib
import logging
import math
import numbers
import re
import time

import procrastinate

from webapp.store import progress as store

log = logging.getLogger(__name__)

INTERVAL = 0.5  # seconds between two writes of one job's progress
MESSAGE_LIMIT = 200  # characters kept of a message; the column holds no more
POOL_WAIT = 1.0  # seconds a write waits for a pooled connection: jobs need them more
FINAL_WAIT = 5.0  # seconds the end of a job waits for its last progress to be written
KEY = "howdah_progress"  # the run's Reporter, in its context's additional_context
# Control characters, lone surrogates (PostgreSQL refuses them) and bidirectional
# overrides (which would make a message read differently on the page).
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def checked_fraction(fraction: float) -> float:
    """``fraction`` as a float from 0 to 1; a TypeError or ValueError for anything else."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
        raise TypeError(
            f"report_progress: the fraction must be a number from 0 to 1,"
            f" not {type(fraction).__name__}"
        )
    value = float(fraction)
    if not 0.0 <= value <= 1.0:  # NaN is refused here too
        raise ValueError(
            f"report_progress: the fraction must be from 0 to 1 (done / total), got {fraction!r}"
        )
    return value


def cleaned_message(message: str | None) -> str:
    """One line of at most ``MESSAGE_LIMIT`` printable characters."""
    if message is None:
        return ""
    if not isinstance(message, str):
        raise TypeError(f"report_progress: the message must be text, not {type(message).__name__}")
    return " ".join(UNPRINTABLE.sub(" ", message).split())[:MESSAGE_LIMIT]


class Reporter:
    """One run's progress: the latest value reported, and the writer that stores it."""

    def __init__(self, pool, job_id: int):
        self.pool, self.job_id = pool, job_id
        self.latest: tuple[float, str] | None = None  # reported, not written yet
        self.written_at = -math.inf  # monotonic time of the last write
        self.ending = asyncio.Event()  # the job is ending: write without waiting
        self.writer: asyncio.Task | None = None
        self.failed = False  # a write failed, and was logged

    def report(self, fraction: float, message: str) -> None:
        """Keep the value; start the writer unless it runs already."""
        self.latest = (fraction, message)
        if self.writer is None or self.writer.done():
            self.writer = asyncio.get_running_loop().create_task(
                self._write_latest(), name=f"progress of job {self.job_id}"
            )

    async def _write_latest(self) -> None:
        while self.latest is not None:
            wait = self.written_at + INTERVAL - time.monotonic()
            if wait > 0 and not self.ending.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.ending.wait(), wait)
            (fraction, message), self.latest = self.latest, None
            await self._write(fraction, message)
            self.written_at = time.monotonic()

    async def _write(self, fraction: float, message: str) -> None:
        try:
            async with self.pool.connection(timeout=POOL_WAIT) as conn:
                await store.upsert_job_progress(conn, self.job_id, fraction, message)
        except Exception as exc:  # progress is worth less than the job: never fail it
            if not self.failed:
                self.failed = True
                log.warning(
                    "progress of job %s not recorded (nor will be again in this run): %s: %s",
                    self.job_id,
                    type(exc).__name__,
                    exc,
                    extra={"action": "progress_not_recorded"},
                )

    async def finish(self) -> None:
        """Write the last value now, waiting for it at most ``FINAL_WAIT`` seconds."""
        self.ending.set()
        if self.writer is not None:
            await asyncio.wait({self.writer}, timeout=FINAL_WAIT)


def report_progress(
    context: procrastinate.JobContext, fraction: float, message: str | None = ""
) -> None:
    """Note how far the job has come: ``fraction`` from 0 to 1 and a short message, such
    as ``report_progress(context, done / total, f"sent {done} of {total} e-mails")``."""
    value, text = checked_fraction(fraction), cleaned_message(message)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("report_progress is for async tasks, on the worker's loop") from None
    reporter = context.additional_context.get(KEY)
    if reporter is None:
        reporter = Reporter(context.app.connector.pool, context.job.id)
        context.additional_context[KEY] = reporter
    reporter.report(value, text)


async def flush(context: procrastinate.JobContext) -> None:
    """Write the run's last reported progress, if it has one still to write."""
    reporter = context.additional_context.get(KEY)
    if reporter is not None:
        await reporter.finish()
