"""Housekeeping statements run by the worker's periodic tasks (async connections)."""

import datetime

import psycopg
from psycopg.rows import dict_row

DELETE_FINISHED = """
    WITH doomed AS (
        SELECT j.id FROM procrastinate_jobs j
        WHERE j.status IN ('succeeded', 'failed', 'cancelled', 'aborted')
          AND (%(queue)s::text IS NULL OR j.queue_name = %(queue)s)
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
    conn: psycopg.AsyncConnection,
    cutoff: datetime.datetime,
    limit: int,
    queue: str | None = None,
) -> int:
    """Delete up to ``limit`` jobs finished before ``cutoff`` (of one queue, if given),
    with their attempts."""
    cursor = await conn.execute(DELETE_FINISHED, {"cutoff": cutoff, "limit": limit, "queue": queue})
    return (await cursor.fetchone())[0]


async def recover_stalled_jobs(
    conn: psycopg.AsyncConnection,
    missed_ticks: int,
    stalled_seconds: float,
    max_lost: int,
    tick_seconds: float,
) -> list[dict]:
    """Count a tick of the watch and recover jobs of dead workers
    (see ``howdah_recover_stalled_jobs``)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT * FROM howdah_recover_stalled_jobs(%s, %s, %s, %s)",
            (missed_ticks, stalled_seconds, max_lost, tick_seconds),
        )
        return await cur.fetchall()


async def prune_silent_workers(conn: psycopg.AsyncConnection, missed_ticks: int) -> int:
    """Delete dead workers' rows (same rule as recovery) once none of their jobs runs."""
    cursor = await conn.execute(
        """
        DELETE FROM procrastinate_workers w USING worker_watch ww
        WHERE ww.worker_id = w.id AND ww.missed_ticks >= %s
          AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j
                          WHERE j.worker_id = w.id AND j.status = 'doing')
        """,
        (missed_ticks,),
    )
    return cursor.rowcount


async def delete_old_worker_records(
    conn: psycopg.AsyncConnection, cutoff: datetime.datetime
) -> int:
    """Forget registry rows of workers gone before ``cutoff`` (no attempt needs them now)."""
    cursor = await conn.execute(
        """
        DELETE FROM worker_registry g
        WHERE g.started_at < %s
          AND NOT EXISTS (SELECT 1 FROM procrastinate_workers w WHERE w.id = g.worker_id)
        """,
        (cutoff,),
    )
    return cursor.rowcount


async def delete_old_sign_in_records(
    conn: psycopg.AsyncConnection, cutoff: datetime.datetime, limit: int
) -> int:
    """Delete up to ``limit`` failed sign-ins, and as many ended or expired sessions,
    from before ``cutoff``: anyone can add them, so they must not pile up for ever."""
    cursor = await conn.execute(
        """
        WITH failures AS (
            DELETE FROM audit_log WHERE id IN (
                SELECT id FROM audit_log
                WHERE action = 'login.failed' AND at < %(cutoff)s
                ORDER BY at LIMIT %(limit)s
            ) RETURNING 1
        ), sessions AS (
            DELETE FROM user_sessions WHERE id_hash IN (
                SELECT id_hash FROM user_sessions
                WHERE coalesce(revoked_at, expires_at) < %(cutoff)s
                LIMIT %(limit)s
            ) RETURNING 1
        )
        SELECT (SELECT count(*) FROM failures) + (SELECT count(*) FROM sessions)
        """,
        {"cutoff": cutoff, "limit": limit},
    )
    return (await cursor.fetchone())[0]


async def delete_old_sms_messages(
    conn: psycopg.AsyncConnection, cutoff: datetime.datetime, limit: int
) -> int:
    """Delete up to ``limit`` SMS message records created before ``cutoff``. Ids grow with
    creation time, so walking the primary key finds the oldest first."""
    cursor = await conn.execute(
        "DELETE FROM sms_messages WHERE id IN ("
        " SELECT id FROM sms_messages WHERE created_at < %s ORDER BY id LIMIT %s)",
        (cutoff, limit),
    )
    return cursor.rowcount


async def delete_old_job_minutes(conn: psycopg.AsyncConnection, cutoff: datetime.datetime) -> int:
    """Forget per-minute run counts from before ``cutoff``."""
    cursor = await conn.execute("DELETE FROM job_minutes WHERE minute < %s", (cutoff,))
    return cursor.rowcount


async def count_finished_jobs(conn: psycopg.AsyncConnection) -> None:
    """Count finished jobs by queue, organization and state into ``job_state_counts``."""
    await conn.execute(
        """
        INSERT INTO job_state_counts AS c (queue_name, organization, status, jobs, counted_at)
        SELECT queue_name, coalesce(args ->> 'organization_id', ''), status::text, count(*),
               statement_timestamp()
        FROM procrastinate_jobs
        WHERE status IN ('succeeded', 'failed', 'cancelled', 'aborted')
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (queue_name, organization, status) DO UPDATE SET
            jobs = excluded.jobs, counted_at = excluded.counted_at
        """
    )


async def delete_uncounted_states(conn: psycopg.AsyncConnection) -> None:
    """Drop the counts that the last count did not find any more (no such job left)."""
    await conn.execute(
        "DELETE FROM job_state_counts"
        " WHERE counted_at < (SELECT max(counted_at) FROM job_state_counts)"
    )


async def fold_attempt_counts(conn: psycopg.AsyncConnection) -> int:
    """Fold hourly attempt counts older than the last full hour into each task's total row
    (hour '-infinity'), in one statement, so a reader sees them in one place or the other
    and the totals never go down. How many hourly rows it folded."""
    cursor = await conn.execute(
        """
        WITH old AS (
            DELETE FROM attempt_counts
            WHERE hour < date_trunc('hour', now()) - interval '1 hour' AND hour > '-infinity'
            RETURNING task_name, outcome, slot, attempts, seconds
        ), folded AS (
            INSERT INTO attempt_counts AS c
                (hour, task_name, outcome, slot, shard, attempts, seconds)
            SELECT '-infinity'::timestamptz, task_name, outcome, slot, 0, sum(attempts),
                   sum(seconds)
            FROM old
            GROUP BY task_name, outcome, slot
            ORDER BY task_name, outcome, slot
            ON CONFLICT (hour, task_name, outcome, slot, shard) DO UPDATE SET
                attempts = c.attempts + excluded.attempts, seconds = c.seconds + excluded.seconds
        )
        SELECT count(*) FROM old
        """
    )
    return (await cursor.fetchone())[0]
