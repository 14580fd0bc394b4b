"""Attempt records: written by the worker (async), read by the web (sync)."""

import psycopg
from psycopg.rows import dict_row

# What the pages and the API show of an attempt; the worker also writes the job's task,
# queue and organization, so that writing an attempt needs no read of the job.
SHOWN = (
    "job_id",
    "attempt",
    "worker_name",
    "outcome",
    "started_at",
    "finished_at",
    "error_class",
    "error_message",
    "traceback",
    "result_summary",
    "retry_at",
)
COLUMNS = (*SHOWN, "task_name", "queue_name", "organization_id")

INSERT_MANY = f"""
    INSERT INTO job_attempts ({", ".join(COLUMNS)})
    SELECT * FROM unnest(
        %s::bigint[], %s::int[], %s::text[], %s::text[], %s::timestamptz[],
        %s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[],
        %s::text[], %s::text[], %s::bigint[]
    )
    ON CONFLICT (job_id, attempt) DO UPDATE SET
        worker_name = excluded.worker_name, outcome = excluded.outcome,
        started_at = excluded.started_at, finished_at = excluded.finished_at,
        error_class = excluded.error_class, error_message = excluded.error_message,
        traceback = excluded.traceback, result_summary = excluded.result_summary,
        retry_at = excluded.retry_at, task_name = excluded.task_name,
        queue_name = excluded.queue_name, organization_id = excluded.organization_id
    WHERE job_attempts.outcome = 'lost'
"""


async def insert_attempts(conn: psycopg.AsyncConnection, rows: list[tuple]) -> None:
    """Insert attempt rows (tuples in COLUMNS order) in one statement.

    A repeat is ignored, but a real outcome replaces a ``lost`` record of the same
    attempt: the worker was only cut off, and its run did end.
    """
    columns = [list(values) for values in zip(*rows, strict=True)]
    await conn.execute(INSERT_MANY, columns)


def list_attempts(conn: psycopg.Connection, job_id: int) -> list[dict]:
    """A job's recorded attempts, first to last."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {', '.join(SHOWN)}, CASE WHEN isfinite(started_at)"
            " AND isfinite(finished_at) THEN extract(epoch FROM finished_at - started_at)::float"
            " END AS duration_seconds FROM job_attempts WHERE job_id = %s ORDER BY attempt",
            (job_id,),
        ).fetchall()
