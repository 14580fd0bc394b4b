"""Fixtures for running task functions on a real PostgreSQL, as a worker would."""

import asyncio
import time
import types

import procrastinate
import psycopg_pool
import pytest


@pytest.fixture
def writes(conn):
    """Every write to job_progress, in order, as (fraction, message, clock time): a trigger
    of the test's own records them, so the test counts what reached the database."""
    conn.execute(
        """
        CREATE TABLE progress_writes (
            n bigserial, fraction real, message text, at timestamptz DEFAULT clock_timestamp()
        );
        CREATE FUNCTION record_progress_write() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO progress_writes (fraction, message) VALUES (NEW.fraction, NEW.message);
            RETURN NEW;
        END $$;
        CREATE TRIGGER record_progress_write AFTER INSERT OR UPDATE ON job_progress
            FOR EACH ROW EXECUTE FUNCTION record_progress_write();
        """
    )

    def read():
        return conn.execute(
            "SELECT fraction, message, at FROM progress_writes ORDER BY n"
        ).fetchall()

    yield read
    conn.execute(
        "DROP TRIGGER record_progress_write ON job_progress;"
        " DROP FUNCTION record_progress_write(); DROP TABLE progress_writes"
    )


def context_on(pool, job_id: int, task_name: str = "diagnostics:work_in_steps"):
    """A job's context on an App whose connector holds ``pool``, as in a worker."""
    job = procrastinate.jobs.Job(
        id=job_id, queue="default", lock=None, queueing_lock=None, task_name=task_name
    )
    app = types.SimpleNamespace(connector=types.SimpleNamespace(pool=pool))
    return procrastinate.JobContext(
        app=app, job=job, start_timestamp=time.time(), abort_reason=lambda: None
    )


def with_pool(db_url, body, closed=False):
    """Run ``body(pool)`` on a pool like the worker's (autocommit connections)."""

    async def go():
        pool = psycopg_pool.AsyncConnectionPool(
            db_url, min_size=1, max_size=2, kwargs={"autocommit": True}, open=False
        )
        async with pool:
            if closed:
                await pool.close()
            return await body(pool)

    return asyncio.run(go())
