"""Periodic housekeeping: purging old finished jobs, on a real PostgreSQL."""

import asyncio
import types

import psycopg_pool
import pytest

from tasks import maintenance


@pytest.fixture
def jobs(conn):
    """Insert jobs in every status; ``age`` sets how long ago their events happened."""

    def make(status: str, age: str) -> int:
        job_id = conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
            " VALUES ('default', 'diagnostics:noop', '{\"organization_id\": 1}') RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "UPDATE procrastinate_jobs SET status = %s::procrastinate_job_status WHERE id = %s",
            (status, job_id),
        )
        conn.execute(
            "UPDATE procrastinate_events SET at = now() - %s::interval WHERE job_id = %s",
            (age, job_id),
        )
        conn.execute(
            "INSERT INTO job_attempts (job_id, attempt, worker_name, outcome, started_at,"
            " finished_at) VALUES (%s, 1, 'w', 'succeeded', now(), now())",
            (job_id,),
        )
        return job_id

    return make


def run_purge(db_url, days: int) -> dict:
    async def go():
        async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, open=False) as pool:
            context = types.SimpleNamespace(
                additional_context={"settings": {"JOB_RETENTION_DAYS": days}},
                app=types.SimpleNamespace(connector=types.SimpleNamespace(pool=pool)),
            )
            return await maintenance.purge_finished_jobs.func(context, timestamp=0)

    return asyncio.run(go())


def test_purge_deletes_old_finished_jobs_and_their_attempts(db_url, conn, jobs):
    old_done = [
        jobs(status, "8 days") for status in ("succeeded", "failed", "cancelled", "aborted")
    ]
    recent = jobs("succeeded", "1 day")
    old_waiting = jobs("todo", "30 days")

    assert run_purge(db_url, days=7) == {"deleted": 4}

    left = {row[0] for row in conn.execute("SELECT id FROM procrastinate_jobs")}
    assert left == {recent, old_waiting}
    attempts = {row[0] for row in conn.execute("SELECT job_id FROM job_attempts")}
    assert attempts == {recent, old_waiting}
    assert not set(old_done) & attempts


def test_purge_keeps_a_job_with_any_recent_event(db_url, conn, jobs):
    job_id = jobs("failed", "10 days")
    conn.execute(
        "INSERT INTO procrastinate_events (job_id, type) VALUES (%s, 'retried')", (job_id,)
    )
    assert run_purge(db_url, days=7) == {"deleted": 0}


def test_stalled_job_is_retried_only_if_still_on_the_silent_worker(db_url, conn):
    import psycopg

    from webapp.store import maintenance as store

    silent = conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()[0]
    other = conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()[0]
    job_id = conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
        " VALUES ('default', 'diagnostics:noop', '{\"organization_id\": 1}') RETURNING id"
    ).fetchone()[0]
    conn.execute(
        "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE id = %s",
        (other, job_id),
    )

    async def retry(worker):
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as aconn:
            return await store.retry_stalled_job(aconn, job_id, worker)

    assert asyncio.run(retry(silent)) is False  # another worker has it now
    assert conn.execute("SELECT status FROM procrastinate_jobs").fetchone()[0] == "doing"
    assert asyncio.run(retry(other)) is True
    assert conn.execute("SELECT status FROM procrastinate_jobs").fetchone()[0] == "todo"
