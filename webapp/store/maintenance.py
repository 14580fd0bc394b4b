"""Housekeeping statements run by the worker's periodic tasks (async connections)."""

import datetime

import psycopg

DELETE_FINISHED = """
    WITH doomed AS (
        SELECT j.id FROM procrastinate_jobs j
        WHERE j.status IN ('succeeded', 'failed', 'cancelled', 'aborted')
          AND (SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id)
              < %(cutoff)s
        ORDER BY j.id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM procrastinate_jobs j USING doomed WHERE j.id = doomed.id RETURNING j.id
    ), attempts AS (
        DELETE FROM job_attempts a USING gone WHERE a.job_id = gone.id
    )
    SELECT count(*) FROM gone
"""


async def delete_finished_jobs(
    conn: psycopg.AsyncConnection, cutoff: datetime.datetime, limit: int
) -> int:
    """Delete up to ``limit`` jobs finished before ``cutoff``, with their attempts."""
    cursor = await conn.execute(DELETE_FINISHED, {"cutoff": cutoff, "limit": limit})
    return (await cursor.fetchone())[0]


async def insert_lost_attempt(
    conn: psycopg.AsyncConnection, job_id: int, attempt: int, worker_id: int | None
) -> None:
    """Record that a job's run ended with its worker gone (times from its last start)."""
    await conn.execute(
        """
        INSERT INTO job_attempts (job_id, attempt, worker_name, outcome, started_at,
                                  finished_at, error_class, error_message)
        SELECT %(job_id)s, %(attempt)s, %(worker)s, 'lost',
               coalesce(max(e.at), now()), now(), 'WorkerLost',
               'the worker stopped sending heartbeats while running this job'
        FROM procrastinate_events e
        WHERE e.job_id = %(job_id)s AND e.type = 'started'
        ON CONFLICT (job_id, attempt) DO NOTHING
        """,
        {"job_id": job_id, "attempt": attempt, "worker": f"worker #{worker_id}"},
    )


STILL_STALLED = "id = %(id)s AND status = 'doing' AND worker_id IS NOT DISTINCT FROM %(worker)s"


async def retry_stalled_job(
    conn: psycopg.AsyncConnection, job_id: int, worker_id: int | None
) -> bool:
    """Put a stalled job back in its queue, unless it moved on since it was found."""
    cursor = await conn.execute(
        "SELECT procrastinate_retry_job_v2(id, now(), NULL, NULL, NULL)"
        f" FROM procrastinate_jobs WHERE {STILL_STALLED}",
        {"id": job_id, "worker": worker_id},
    )
    return await cursor.fetchone() is not None


async def fail_stalled_job(
    conn: psycopg.AsyncConnection, job_id: int, worker_id: int | None
) -> bool:
    """Mark a stalled job failed, unless it moved on since it was found."""
    cursor = await conn.execute(
        "SELECT procrastinate_finish_job_v1(id, 'failed', false)"
        f" FROM procrastinate_jobs WHERE {STILL_STALLED}",
        {"id": job_id, "worker": worker_id},
    )
    return await cursor.fetchone() is not None
