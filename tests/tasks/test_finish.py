"""``howdah_finish_jobs``: a batch of runs ended in one call, by Procrastinate's rules."""

import asyncio
import datetime

import psycopg
import pytest

from webapp.store import loaders

LATER = datetime.datetime(2999, 1, 1, tzinfo=datetime.UTC)


@pytest.fixture
def running(conn):
    """A job already running on a registered worker, as a fetch leaves it; returns its id."""
    worker_id = conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()[0]

    def make(org=1, attempts=0, queueing_lock=None):
        job_id = conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, queueing_lock)"
            " VALUES ('default', 'diagnostics:noop', %s, %s) RETURNING id",
            (f'{{"organization_id": {org}}}', queueing_lock),
        ).fetchone()[0]
        conn.execute(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s, attempts = %s"
            " WHERE id = %s",
            (worker_id, attempts, job_id),
        )
        return job_id

    return make


def finish(db_url, *finishes) -> list[tuple]:
    """Call the function the way the worker does; its rows, in the order it returns them."""

    async def go():
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            loaders.register(conn)
            columns = [list(values) for values in zip(*finishes, strict=True)]
            cursor = await conn.execute(
                "SELECT job_id, applied FROM howdah_finish_jobs(%s::bigint[], %s::int[],"
                " %s::text[], %s::timestamptz[], %s::int[], %s::varchar[], %s::text[])",
                columns,
            )
            return await cursor.fetchall()

    return asyncio.run(go())


def ended(job_id, status="succeeded", attempts=0):
    return (job_id, attempts, status, None, None, None, None)


def retried(job_id, attempts=0, at=LATER):
    return (job_id, attempts, "failed", at, 3, "default", None)


def state(conn, job_id) -> tuple:
    return conn.execute(
        "SELECT status::text, attempts, abort_requested, scheduled_at"
        " FROM procrastinate_jobs WHERE id = %s",
        (job_id,),
    ).fetchone()


def events(conn, job_id) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT type::text FROM procrastinate_events WHERE job_id = %s ORDER BY id", (job_id,)
        )
    ]


def test_a_mixed_batch_ends_each_run_as_procrastinate_would(conn, db_url, running):
    ok, failed, aborted, again = running(), running(attempts=2), running(), running()
    conn.execute("UPDATE procrastinate_jobs SET abort_requested = true WHERE id = %s", (aborted,))

    rows = finish(
        db_url, retried(again), ended(ok), ended(failed, "failed", 2), ended(aborted, "aborted")
    )

    assert rows == [(again, True), (ok, True), (failed, True), (aborted, True)]
    assert state(conn, ok) == ("succeeded", 1, False, None)
    assert state(conn, failed) == ("failed", 3, False, None)
    assert state(conn, aborted) == ("aborted", 1, False, None)
    assert state(conn, again) == ("todo", 1, False, LATER)
    # Procrastinate's triggers wrote one event per change, as its own functions make them.
    assert events(conn, ok) == ["deferred", "started", "succeeded"]
    assert events(conn, failed) == ["deferred", "started", "failed"]
    assert events(conn, aborted)[-1] == "aborted"
    assert events(conn, again)[-1] == "deferred_for_retry"


def test_a_run_that_is_no_longer_the_jobs_is_left_alone(conn, db_url, running):
    mine, moved_on, cancelled = running(attempts=1), running(attempts=2), running()
    conn.execute("UPDATE procrastinate_jobs SET status = 'cancelled' WHERE id = %s", (cancelled,))

    rows = finish(
        db_url,
        ended(mine, attempts=1),
        ended(moved_on, attempts=1),  # the job is on a later run now
        ended(cancelled),
        ended(10**12),  # no such job
    )

    assert rows == [(mine, True), (moved_on, False), (cancelled, False), (10**12, False)]
    assert state(conn, moved_on) == ("doing", 2, False, None)
    assert state(conn, cancelled)[0] == "cancelled"


def test_two_runs_of_one_job_in_a_batch_end_only_the_current_one(conn, db_url, running):
    job = running(attempts=4)
    rows = finish(db_url, ended(job, "failed", attempts=3), ended(job, attempts=4))
    assert rows == [(job, False), (job, True)]
    assert state(conn, job) == ("succeeded", 5, False, None)


def test_a_status_that_does_not_end_a_run_fails_the_whole_batch(conn, db_url, running):
    ok, odd = running(), running()
    with pytest.raises(psycopg.errors.RaiseException, match="End status should be"):
        finish(db_url, ended(ok), ended(odd, "todo"))
    assert state(conn, ok)[0] == "doing", "nothing of the batch was written"


def test_a_retry_whose_key_was_taken_meanwhile_waits_without_it(conn, db_url, running):
    job = running(queueing_lock="key")
    conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, queueing_lock)"
        " VALUES ('default', 'diagnostics:noop', '{}', 'key')"
    )
    assert finish(db_url, retried(job)) == [(job, True)]
    assert state(conn, job)[0] == "todo"


def test_the_runs_it_ends_are_counted_by_minute_queue_and_organization(conn, db_url, running):
    conn.execute("TRUNCATE job_minutes")
    jobs = [running(org=1), running(org=1), running(org=2), running(org=2)]
    finish(db_url, ended(jobs[0]), ended(jobs[1], "failed"), ended(jobs[2]), retried(jobs[3]))
    counts = conn.execute(
        "SELECT organization, finished, failed FROM job_minutes ORDER BY organization"
    ).fetchall()
    assert counts == [("1", 2, 1), ("2", 2, 1)]
