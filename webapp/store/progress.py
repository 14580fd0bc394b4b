"""Progress reported by running tasks (async connections: the worker writes it)."""

import psycopg


async def upsert_job_progress(
    conn: psycopg.AsyncConnection, job_id: int, fraction: float, message: str
) -> None:
    """Record the job's latest progress in place of the one before."""
    await conn.execute(
        """
        INSERT INTO job_progress (job_id, fraction, message, updated_at)
        VALUES (%(job_id)s, %(fraction)s, %(message)s, now())
        ON CONFLICT (job_id) DO UPDATE
        SET fraction = excluded.fraction, message = excluded.message,
            updated_at = excluded.updated_at
        """,
        {"job_id": job_id, "fraction": fraction, "message": message},
    )
