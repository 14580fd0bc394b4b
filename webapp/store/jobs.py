"""Reads and state changes on jobs, scoped by organization (``None`` = every organization)."""

import psycopg
import psycopg.rows
from psycopg.rows import dict_row

# One row per job, with times from Procrastinate's events, the last error we recorded,
# the jobs a manual retry links it to, and the last progress its task reported.
JOB_COLUMNS = """
    j.id, j.status::text AS status, j.task_name, j.queue_name, j.priority, j.args,
    j.scheduled_at, j.abort_requested, j.queueing_lock,
    ev.created_at, ev.started_at, ev.finished_at, ev.runs,
    err.error_class, err.error_message,
    retried_from.job_id AS retried_from, retried_as.retry_job_id AS retried_as,
    progress.fraction AS progress_fraction, progress.message AS progress_message,
    progress.updated_at AS progress_updated_at
"""
JOB_JOINS = """
    LEFT JOIN job_retries retried_from ON retried_from.retry_job_id = j.id
    LEFT JOIN job_progress progress ON progress.job_id = j.id
    LEFT JOIN job_retries retried_as ON retried_as.job_id = j.id
    LEFT JOIN LATERAL (
        SELECT min(e.at) FILTER (WHERE e.type = 'deferred') AS created_at,
               max(e.at) FILTER (WHERE e.type = 'started') AS started_at,
               max(e.at) FILTER (WHERE e.type IN ('succeeded', 'failed', 'cancelled', 'aborted'))
                   AS finished_at,
               count(*) FILTER (WHERE e.type = 'started') AS runs
        FROM procrastinate_events e WHERE e.job_id = j.id
    ) ev ON true
    LEFT JOIN LATERAL (
        SELECT a.error_class, a.error_message FROM job_attempts a
        WHERE a.job_id = j.id AND a.outcome <> 'succeeded'
        ORDER BY a.attempt DESC LIMIT 1
    ) err ON true
"""
PROGRESS_COLUMNS = {
    "progress_fraction": "fraction",
    "progress_message": "message",
    "progress_updated_at": "updated_at",
}
IN_SCOPE = "(%(org)s::text IS NULL OR j.args ->> 'organization_id' = %(org)s::text)"


def _scope(organization_id: int | None) -> str | None:
    return None if organization_id is None else str(organization_id)


def job_row(cursor: psycopg.Cursor) -> psycopg.rows.RowMaker[dict]:
    """Dict rows of JOB_COLUMNS, the progress columns nested as ``progress`` (None for a
    job that reported none), the shape the API document and the job page read."""
    make_dict = dict_row(cursor)

    def make(values):
        row = make_dict(values)
        progress = {key: row.pop(column) for column, key in PROGRESS_COLUMNS.items()}
        row["progress"] = progress if progress["updated_at"] is not None else None
        return row

    return make


def get_job(conn: psycopg.Connection, job_id: int, organization_id: int | None) -> dict | None:
    """One job with its times, run count, last error and progress, if it is in scope."""
    with conn.cursor(row_factory=job_row) as cur:
        return cur.execute(
            f"SELECT {JOB_COLUMNS} FROM procrastinate_jobs j {JOB_JOINS}"
            f" WHERE j.id = %(id)s AND {IN_SCOPE}",
            {"id": job_id, "org": _scope(organization_id)},
        ).fetchone()


LIST_JOBS = f"""
    SELECT {JOB_COLUMNS} FROM (
        SELECT * FROM procrastinate_jobs j
        WHERE {IN_SCOPE}
          AND (%(status)s::text IS NULL OR j.status::text = %(status)s)
          AND (%(queue)s::text IS NULL OR j.queue_name = %(queue)s)
          AND (%(hidden)s::text IS NULL OR j.queue_name <> %(hidden)s)
          AND (%(task)s::text IS NULL OR j.task_name = %(task)s)
          AND (%(before)s::bigint IS NULL OR j.id < %(before)s)
        ORDER BY j.id DESC
        LIMIT %(limit)s
    ) j {JOB_JOINS}
    ORDER BY j.id DESC
"""


def list_jobs(
    conn: psycopg.Connection,
    organization_id: int | None,
    *,
    status: str | None = None,
    queue: str | None = None,
    task: str | None = None,
    hidden_queue: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[dict]:
    """Jobs in scope, newest first, after the ``before_id`` cursor (keyset pagination),
    leaving out ``hidden_queue``."""
    with conn.cursor(row_factory=job_row) as cur:
        return cur.execute(
            LIST_JOBS,
            {
                "org": _scope(organization_id),
                "status": status,
                "queue": queue,
                "task": task,
                "hidden": hidden_queue,
                "before": before_id,
                "limit": limit,
            },
        ).fetchall()


def list_waiting_jobs_by_queueing_lock(conn: psycopg.Connection, locks: list[str]) -> dict:
    """The waiting job holding each of these queueing locks, as {lock: job id}."""
    rows = conn.execute(
        "SELECT queueing_lock, id FROM procrastinate_jobs"
        " WHERE queueing_lock = ANY(%s) AND status = 'todo'",
        (locks,),
    ).fetchall()
    return dict(rows)


def retry_failed_job(conn: psycopg.Connection, job_id: int) -> bool:
    """Put a failed job back in its queue now; False if it is not failed any more (another
    retry won the race). Its attempts stay as they are: the failed run was counted when
    it ended (Procrastinate's retry function would count it again, leaving a gap in the
    attempt numbers). Procrastinate's trigger records the retry event as for any retry."""
    row = conn.execute(
        "UPDATE procrastinate_jobs SET status = 'todo', scheduled_at = now()"
        " WHERE id = %s AND status = 'failed' RETURNING id",
        (job_id,),
    ).fetchone()
    return row is not None


def clear_abort_request(conn: psycopg.Connection, job_id: int) -> None:
    """Forget the abort request a failed job kept, so it can go back to ``todo``."""
    conn.execute(
        "UPDATE procrastinate_jobs SET abort_requested = false"
        " WHERE id = %s AND status = 'failed' AND abort_requested",
        (job_id,),
    )


def copy_job(conn: psycopg.Connection, job_id: int) -> int:
    """Defer a new job with the task, queue, priority, idempotency key and arguments (as
    stored, so even arguments Python cannot load survive) of ``job_id``, and record it as
    that job's retry; returns the new id. Raises UniqueViolation if the job was retried
    before, or if a job with its idempotency key is waiting."""
    row = conn.execute(
        """
        WITH copy AS (
            SELECT (procrastinate_defer_jobs_v1(ARRAY[ROW(queue_name, task_name, priority,
                    NULL, queueing_lock, args, NULL)::procrastinate_job_to_defer_v1]))[1] AS id
            FROM procrastinate_jobs WHERE id = %(id)s
        )
        INSERT INTO job_retries (job_id, retry_job_id) SELECT %(id)s, id FROM copy
        RETURNING retry_job_id
        """,
        {"id": job_id},
    ).fetchone()
    return row[0]
