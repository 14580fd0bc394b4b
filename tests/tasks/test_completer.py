"""The completer on a real PostgreSQL: outcome, then status, through bad rows and outages."""

import asyncio
import contextlib

import psycopg
import psycopg_pool
import pytest

from tasks.worker import execution
from tasks.worker.availability import Availability
from tasks.worker.completer import Completer


@pytest.fixture
def running_jobs(conn):
    """``n`` jobs in ``doing``, as a fetch leaves them; returns their ids."""

    def make(n: int) -> list[int]:
        worker = conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()[0]
        return [
            conn.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, worker_id)"
                " VALUES ('default', 'diagnostics:noop', '{}', 'doing', %s) RETURNING id",
                (worker,),
            ).fetchone()[0]
            for _ in range(n)
        ]

    return make


def outcome(job_id: int, status: str = "succeeded", exc: BaseException | None = None):
    if exc is not None:
        return execution.Outcome.of_error(job_id, 0, "t", execution.now(), exc, status)
    return execution.Outcome(job_id, 0, "t", status, execution.now(), execution.now())


async def complete(db_url: str, outcomes, settle: float = 5.0) -> list:
    """Hand ``outcomes`` to a running completer; return what it could not write in time."""
    async with psycopg_pool.AsyncConnectionPool(
        db_url, min_size=1, timeout=1, open=False, kwargs={"autocommit": True}
    ) as pool:
        completer = Completer(pool, Availability(), "w")
        writer = asyncio.create_task(completer.run())
        for item in outcomes:
            completer.add(item)
        left = await completer.drain(settle)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        return left


def statuses(conn) -> dict[int, str]:
    return dict(conn.execute("SELECT id, status::text FROM procrastinate_jobs").fetchall())


def test_outcomes_are_recorded_and_applied_together(db_url, conn, running_jobs):
    ids = running_jobs(3)
    failed = outcome(ids[1], "failed", ValueError("bad\x00input \ud800"))
    batch = [outcome(ids[0]), failed, outcome(ids[2], "aborted")]
    assert asyncio.run(complete(db_url, batch)) == []
    assert statuses(conn) == {ids[0]: "succeeded", ids[1]: "failed", ids[2]: "aborted"}
    rows = conn.execute(
        "SELECT job_id, attempt, worker_name, outcome, error_message FROM job_attempts"
        " ORDER BY job_id"
    ).fetchall()
    assert rows == [
        (ids[0], 1, "w", "succeeded", None),
        (ids[1], 1, "w", "failed", "bad\\x00input \\ud800"),
        (ids[2], 1, "w", "aborted", None),
    ]


def test_ended_runs_are_counted_by_minute_queue_and_organization(db_url, conn, running_jobs):
    ids = running_jobs(4)
    conn.execute(
        "UPDATE procrastinate_jobs SET args = '{\"organization_id\": 7}' WHERE id = ANY(%s)",
        (ids[:2],),
    )
    batch = [outcome(ids[0]), outcome(ids[1], "failed", ValueError("x")), outcome(ids[2])]
    batch.append(outcome(ids[3], "aborted"))
    assert asyncio.run(complete(db_url, batch)) == []
    moved_on = running_jobs(1)  # a run whose job someone else moved on is not counted
    conn.execute("UPDATE procrastinate_jobs SET status = 'todo' WHERE id = %s", (moved_on[0],))
    assert asyncio.run(complete(db_url, [outcome(moved_on[0])])) == []
    rows = conn.execute(
        "SELECT minute = date_trunc('minute', minute), queue_name, organization, finished, failed"
        " FROM job_minutes ORDER BY organization"
    ).fetchall()
    assert rows == [(True, "default", "", 2, 1), (True, "default", "7", 2, 1)]


def test_a_job_that_moved_on_keeps_its_status_and_gets_its_attempt(db_url, conn, running_jobs):
    (job_id,) = running_jobs(1)
    conn.execute("SELECT procrastinate_retry_job_v2(%s, now(), NULL, NULL, NULL)", (job_id,))
    assert asyncio.run(complete(db_url, [outcome(job_id)])) == []
    assert statuses(conn) == {job_id: "todo"}
    attempts = conn.execute("SELECT outcome FROM job_attempts").fetchall()
    assert attempts == [("succeeded",)]


def test_a_row_that_fails_alone_is_set_aside_and_blocks_nothing(db_url, conn, running_jobs, caplog):
    ids = running_jobs(3)
    bogus = outcome(ids[1], "bogus")  # neither job_attempts nor Procrastinate accepts it
    left = asyncio.run(complete(db_url, [outcome(ids[0]), bogus, outcome(ids[2])]))
    assert left == []
    # Its status could not be written as it was, so the job ends as a plain failure.
    assert statuses(conn) == {ids[0]: "succeeded", ids[1]: "failed", ids[2]: "succeeded"}
    assert "could not write its status bogus" in caplog.text
    assert "could not record attempt 1" in caplog.text


def test_a_retry_that_cannot_be_stored_fails_the_job_instead(db_url, conn, running_jobs):
    (job_id,) = running_jobs(1)
    item = outcome(job_id, "failed", ValueError("x"))
    item.retry = execution.procrastinate.RetryDecision(retry_in={"seconds": 1}, queue="q" * 200)
    assert asyncio.run(complete(db_url, [item])) == []
    assert statuses(conn) == {job_id: "failed"}


@pytest.mark.e2e
def test_outcomes_wait_out_an_outage_and_land_once_the_database_is_back(own_server, caplog):
    url = own_server.migrated_database()
    with psycopg.connect(url, autocommit=True) as conn:
        worker = conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()[0]
        job_id = conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, worker_id)"
            " VALUES ('default', 't', '{}', 'doing', %s) RETURNING id",
            (worker,),
        ).fetchone()[0]

    async def scenario():
        async with psycopg_pool.AsyncConnectionPool(
            url, min_size=1, timeout=1, open=False, kwargs={"autocommit": True}
        ) as pool:
            completer = Completer(pool, Availability(), "w")
            writer = asyncio.create_task(completer.run())
            await asyncio.to_thread(own_server.stop)
            completer.add(outcome(job_id))
            assert len(await completer.drain(3)) == 1  # kept while the server is down
            await asyncio.to_thread(own_server.start)
            left = await completer.drain(30)
            writer.cancel()
            return left

    assert asyncio.run(scenario()) == []
    with psycopg.connect(url) as conn:
        assert statuses(conn) == {job_id: "succeeded"}
    assert caplog.text.count("database unavailable (record)") == 1
    assert caplog.text.count("database available again") == 1


def test_outcomes_are_recorded_while_their_statuses_wait_behind_a_lock(db_url, conn, running_jobs):
    first, later = running_jobs(2)

    async def scenario():
        async with psycopg_pool.AsyncConnectionPool(
            db_url, min_size=2, timeout=5, open=False, kwargs={"autocommit": True}
        ) as pool:
            completer = Completer(pool, Availability(), "w")
            writer = asyncio.create_task(completer.run())
            async with await psycopg.AsyncConnection.connect(db_url) as locker:
                await locker.execute("LOCK TABLE procrastinate_jobs IN ACCESS EXCLUSIVE MODE")
                completer.add(outcome(first))
                await asyncio.sleep(0.5)  # its status write now waits for the lock
                completer.add(outcome(later))
                await asyncio.sleep(0.5)
                recorded = await (
                    await locker.execute("SELECT job_id FROM job_attempts ORDER BY job_id")
                ).fetchall()
                await locker.rollback()
            left = await completer.drain(10)
            writer.cancel()
            return recorded, left

    recorded, left = asyncio.run(scenario())
    assert recorded == [(first,), (later,)]  # the later one too, while the first waited
    assert left == []
    assert statuses(conn) == {first: "succeeded", later: "succeeded"}


def test_a_status_procrastinate_cannot_write_ends_as_a_plain_failure(
    db_url, conn, running_jobs, caplog
):
    (job_id,) = running_jobs(1)
    conn.execute("UPDATE procrastinate_jobs SET attempts = 2147483647 WHERE id = %s", (job_id,))
    item = outcome(job_id)
    item.attempts = 2147483647
    assert asyncio.run(complete(db_url, [item])) == []
    assert statuses(conn) == {job_id: "failed"}
    assert "could not write its status succeeded" in caplog.text
