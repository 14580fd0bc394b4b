"""What the worker says to the database: registration, heartbeats, fetches and finishes.

Every function takes an async connection first and runs one statement; the rules
themselves live in SQL functions (``migrations/0009``-``0011``).
"""

import psycopg
from psycopg.rows import dict_row


async def register_worker(
    conn: psycopg.AsyncConnection,
    name: str,
    host: str,
    pid: int,
    queues: list[str] | None,
    concurrency: int,
) -> int:
    """Register a worker with Procrastinate and note its name; return its id."""
    cursor = await conn.execute(
        """
        WITH w AS (SELECT worker_id FROM procrastinate_register_worker_v1())
        INSERT INTO worker_registry (worker_id, name, host, pid, queues, concurrency)
        SELECT w.worker_id, %s, %s, %s, %s, %s FROM w
        RETURNING worker_id
        """,
        (name, host, pid, queues, concurrency),
    )
    return (await cursor.fetchone())[0]


async def beat(conn: psycopg.AsyncConnection, worker_id: int) -> bool:
    """Update the worker's heartbeat; False if its row is gone (another worker pruned it)."""
    cursor = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM procrastinate_workers WHERE id = %(id)s)"
        " FROM procrastinate_update_heartbeat_v1(%(id)s)",
        {"id": worker_id},
    )
    return (await cursor.fetchone())[0]


async def unregister_worker(conn: psycopg.AsyncConnection, worker_id: int) -> None:
    """Remove the worker's Procrastinate row (its jobs keep their status)."""
    await conn.execute("SELECT procrastinate_unregister_worker_v1(%s)", (worker_id,))


async def mark_worker_stopped(conn: psycopg.AsyncConnection, worker_id: int) -> None:
    """Note in the registry that the worker stopped cleanly."""
    await conn.execute(
        "UPDATE worker_registry SET stopped_at = now() WHERE worker_id = %s", (worker_id,)
    )


async def fetch_jobs(
    conn: psycopg.AsyncConnection,
    worker_id: int,
    queues: list[str] | None,
    limit: int,
    org_max_running: int | None,
) -> list[dict]:
    """Take up to ``limit`` waiting jobs for this worker (see ``howdah_fetch_jobs``)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT * FROM howdah_fetch_jobs(%s::varchar[], %s, %s, %s)",
            (queues, worker_id, limit, org_max_running),
        )
        return await cur.fetchall()


async def finish_jobs(conn: psycopg.AsyncConnection, finishes: list[tuple]) -> dict[int, bool]:
    """Apply end statuses or retries; returns, per job id, whether it was still this run's.

    ``finishes`` holds tuples of (id, attempts, status, retry_at, retry_priority,
    retry_queue, retry_lock).
    """
    columns = [list(values) for values in zip(*finishes, strict=True)]
    cursor = await conn.execute(
        "SELECT job_id, applied FROM howdah_finish_jobs(%s::bigint[], %s::int[], %s::text[],"
        " %s::timestamptz[], %s::int[], %s::varchar[], %s::text[])",
        columns,
    )
    return dict(await cursor.fetchall())


async def release_jobs(
    conn: psycopg.AsyncConnection, worker_id: int, job_ids: list[int]
) -> list[int]:
    """Hand back jobs this worker took but never started (see ``howdah_release_jobs``)."""
    cursor = await conn.execute("SELECT * FROM howdah_release_jobs(%s, %s)", (worker_id, job_ids))
    return [row[0] for row in await cursor.fetchall()]


async def fail_job(conn: psycopg.AsyncConnection, job_id: int, attempts: int) -> bool:
    """End a run as failed without Procrastinate's function, for a row that function
    cannot finish (its attempt count at the integer limit, say); False if it moved on."""
    cursor = await conn.execute(
        "UPDATE procrastinate_jobs SET status = 'failed', abort_requested = false"
        " WHERE id = %s AND status = 'doing' AND attempts = %s RETURNING id",
        (job_id, attempts),
    )
    return await cursor.fetchone() is not None


async def list_running_job_ids(conn: psycopg.AsyncConnection, worker_id: int) -> list[int]:
    """Ids of the jobs the database has running on this worker."""
    cursor = await conn.execute(
        "SELECT id FROM procrastinate_jobs WHERE worker_id = %s AND status = 'doing'",
        (worker_id,),
    )
    return [row[0] for row in await cursor.fetchall()]


async def claim_jobs(conn: psycopg.AsyncConnection, worker_id: int, job_ids: list[int]) -> None:
    """Put this worker's new id on running jobs whose worker row was pruned."""
    await conn.execute(
        "UPDATE procrastinate_jobs SET worker_id = %s"
        " WHERE id = ANY(%s) AND status = 'doing' AND worker_id IS NULL",
        (worker_id, job_ids),
    )


async def list_jobs_to_abort(conn: psycopg.AsyncConnection, job_ids: list[int]) -> list[int]:
    """Which of these running jobs someone asked to abort."""
    cursor = await conn.execute(
        "SELECT id FROM procrastinate_jobs"
        " WHERE id = ANY(%s) AND status = 'doing' AND abort_requested",
        (job_ids,),
    )
    return [row[0] for row in await cursor.fetchall()]
