"""Progress reported by running tasks: throttled writes to a real PostgreSQL, the last value
always stored, bad values refused, and database trouble never failing the job."""

import asyncio
import datetime
import itertools
import logging
import math
import time

import procrastinate
import psycopg
import pytest

from tasks import diagnostics, progress
from tasks.payloads import NoopPayload
from tasks.registry import job_task
from tests.tasks.conftest import context_on, with_pool
from webapp.store import maintenance

bp = procrastinate.Blueprint()


class Broken(Exception):
    """Raised by the test task once it has reported some progress."""


@job_task(bp, name="report_then_fail", payload=NoopPayload, queue="default")
async def report_then_fail(payload: NoopPayload, context: procrastinate.JobContext) -> None:
    """Report 40 %, then fail."""
    progress.report_progress(context, 0.4, "halfway there, nearly")
    raise Broken("after reporting")


@pytest.fixture
def job(conn):
    """A running job's id."""
    return conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)"
        " VALUES ('default', 'diagnostics:work_in_steps', '{\"organization_id\": 1}', 'doing')"
        " RETURNING id"
    ).fetchone()[0]


def stored(conn, job_id):
    return conn.execute(
        "SELECT fraction, message FROM job_progress WHERE job_id = %s", (job_id,)
    ).fetchone()


def test_a_burst_of_reports_writes_once_and_the_last_value_lands(db_url, conn, job, writes):
    async def burst(pool):
        context = context_on(pool, job)
        started = time.monotonic()
        for done in range(1, 201):
            progress.report_progress(context, done / 200, f"item {done} of 200")
            await asyncio.sleep(0.001)  # 0.2 s or so, in which the writer may run
        await progress.flush(context)
        return time.monotonic() - started

    took = with_pool(db_url, burst)
    rows = writes()
    # The first report, then the last one at the end (and one more per half second, on a
    # machine so busy that the burst took longer).
    assert len(rows) <= 2 + int(took / progress.INTERVAL), (took, rows)
    assert rows[-1][:2] == (1.0, "item 200 of 200")
    assert stored(conn, job) == (1.0, "item 200 of 200")


def test_steady_reports_write_at_most_every_half_second(db_url, conn, job, writes):
    async def steady(pool):
        context = context_on(pool, job)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < 1.2:
            progress.report_progress(context, elapsed / 1.2, "working")
            await asyncio.sleep(0.01)
        progress.report_progress(context, 0.9, "nearly")
        await progress.flush(context)

    with_pool(db_url, steady)
    rows = writes()
    assert 3 <= len(rows) <= 4, rows  # about 100 reports: 0 s, 0.5 s, 1 s, the last
    # The last write comes at the end of the job, without waiting.
    gaps = [(b[2] - a[2]).total_seconds() for a, b in itertools.pairwise(rows[:-1])]
    assert all(gap >= progress.INTERVAL * 0.9 for gap in gaps), gaps
    assert rows[-1][:2] == (pytest.approx(0.9), "nearly")


def test_the_latest_value_is_written_once_the_interval_has_passed(db_url, conn, job):
    async def report_and_wait(pool):
        context = context_on(pool, job)
        progress.report_progress(context, 0.1, "first")
        await asyncio.sleep(0.1)
        progress.report_progress(context, 0.2, "second")
        progress.report_progress(context, 0.3, "third")
        await asyncio.sleep(0.1)
        before = stored(conn, job)
        await asyncio.sleep(progress.INTERVAL + 0.3)  # no flush: the writer's own timer
        return before

    assert with_pool(db_url, report_and_wait) == (pytest.approx(0.1), "first")
    assert stored(conn, job) == (pytest.approx(0.3), "third")


def test_a_job_task_writes_its_last_progress_before_it_ends(db_url, conn, job, writes):
    async def run(pool):
        context = context_on(pool, job)
        return await diagnostics.work_in_steps.func(
            context, organization_id=1, steps=4, seconds_per_step=0
        )

    assert with_pool(db_url, run) == {"steps": 4}
    assert stored(conn, job) == (1.0, "step 4 of 4")  # written before the task returned
    assert len(writes()) <= 2


def test_a_failing_job_keeps_the_progress_it_reported(db_url, conn, job):
    async def run(pool):
        await report_then_fail.func(context_on(pool, job, "report_then_fail"), organization_id=1)

    with pytest.raises(Broken):
        with_pool(db_url, run)
    assert stored(conn, job) == (pytest.approx(0.4), "halfway there, nearly")


@pytest.mark.parametrize(
    ("closed", "job_id"),
    [(False, 10**12), (True, None)],
    ids=["the job row is gone", "the pool is closed"],
)
def test_a_database_error_is_logged_once_and_never_fails_the_job(
    db_url, job, caplog, closed, job_id
):
    async def run(pool):
        context = context_on(pool, job_id or job)
        return await diagnostics.work_in_steps.func(
            context, organization_id=1, steps=3, seconds_per_step=0.3
        )

    with caplog.at_level(logging.WARNING, logger="tasks.progress"):
        assert with_pool(db_url, run, closed=closed) == {"steps": 3}
    (record,) = caplog.records  # three writes tried, one line
    assert record.getMessage().startswith(f"progress of job {job_id or job} not recorded")


@pytest.mark.parametrize(
    ("fraction", "error", "says"),
    [
        (1.5, ValueError, "from 0 to 1 (done / total), got 1.5"),
        (-0.01, ValueError, "got -0.01"),
        (math.nan, ValueError, "got nan"),
        (math.inf, ValueError, "got inf"),
        ("0.5", TypeError, "not str"),
        (None, TypeError, "not NoneType"),
        (True, TypeError, "not bool"),
    ],
)
def test_a_fraction_outside_0_to_1_is_refused_with_a_clear_error(fraction, error, says):
    context = context_on(None, 1)
    with pytest.raises(error, match=r"^report_progress: the fraction must be") as raised:
        progress.report_progress(context, fraction, "x")
    assert says in str(raised.value)
    assert progress.KEY not in context.additional_context  # nothing was kept


def test_a_message_that_is_not_text_is_refused():
    with pytest.raises(TypeError, match="report_progress: the message must be text, not int"):
        progress.report_progress(context_on(None, 1), 0.5, 42)


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        ("sent 120 of 500 e-mails", "sent 120 of 500 e-mails"),
        ("line one\nline two\r\n\tend\x00", "line one line two end"),
        ("\x1b[31mred\x1b[0m", "[31mred [0m"),
        ("evil\u202eexe.txt", "evil exe.txt"),
        ("lone \ud800 surrogate", "lone surrogate"),
        (None, ""),
        ("é" * 500, "é" * 200),
    ],
)
def test_messages_are_one_printable_line_of_at_most_200_characters(message, kept):
    assert progress.cleaned_message(message) == kept


def test_whole_integers_are_fractions_too():
    assert progress.checked_fraction(0) == 0.0
    assert progress.checked_fraction(1) == 1.0


def test_a_cleaned_message_is_stored_as_shown(db_url, conn, job):
    async def report(pool):
        context = context_on(pool, job)
        progress.report_progress(context, 0.5, "x\x00y " * 100)
        await progress.flush(context)

    with_pool(db_url, report)
    fraction, message = stored(conn, job)
    assert (fraction, len(message)) == (0.5, 200)
    assert message.startswith("x y x y")


def test_a_sync_caller_is_told_progress_is_for_async_tasks():
    with pytest.raises(RuntimeError, match="for async tasks"):
        progress.report_progress(context_on(None, 1), 0.5)


def test_progress_stays_after_the_job_ends_and_goes_with_it(db_url, conn, job):
    conn.execute(
        "INSERT INTO job_progress (job_id, fraction, message) VALUES (%s, 1, 'done')", (job,)
    )
    conn.execute("UPDATE procrastinate_jobs SET status = 'succeeded' WHERE id = %s", (job,))
    assert stored(conn, job) == (1.0, "done")

    async def purge(pool):
        async with pool.connection() as aconn:
            later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
            return await maintenance.delete_finished_jobs(aconn, later, 100)

    assert with_pool(db_url, purge) == 1
    assert stored(conn, job) is None


def test_the_database_refuses_progress_outside_0_to_1(conn, job):
    with pytest.raises(psycopg.errors.CheckViolation, match="job_progress_fraction_check"):
        conn.execute("INSERT INTO job_progress (job_id, fraction) VALUES (%s, 1.01)", (job,))
