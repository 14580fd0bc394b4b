"""Reads and state changes on jobs, scoped by organization (``None`` = every organization)."""

import datetime
import json

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
# A job's times from Procrastinate's events (the job row has none): ``ev.created_at``,
# ``started_at``, ``finished_at`` and ``runs``.
EVENT_TIMES = """
    LEFT JOIN LATERAL (
        SELECT min(e.at) FILTER (WHERE e.type = 'deferred') AS created_at,
               max(e.at) FILTER (WHERE e.type = 'started') AS started_at,
               max(e.at) FILTER (WHERE e.type IN ('succeeded', 'failed', 'cancelled', 'aborted'))
                   AS finished_at,
               count(*) FILTER (WHERE e.type = 'started') AS runs
        FROM procrastinate_events e WHERE e.job_id = j.id
    ) ev ON true
"""
JOB_JOINS = f"""
    LEFT JOIN job_retries retried_from ON retried_from.retry_job_id = j.id
    LEFT JOIN job_progress progress ON progress.job_id = j.id
    LEFT JOIN job_retries retried_as ON retried_as.job_id = j.id
{EVENT_TIMES}    LEFT JOIN LATERAL (
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


# Procrastinate's own insert function, as its JobManager calls it (its triggers record the
# "deferred" event and wake the workers), with the jobs sent as one JSON document. psycopg
# writes the manager's array of composites as text escaped field by field: through it, one
# job's insert took about 60 % more CPU in the web process, and the batch endpoint made
# about 30 % fewer jobs a second.
DEFER_JOBS = """
    SELECT unnest(procrastinate_defer_jobs_v1(ARRAY(
        SELECT ROW(j.queue_name, j.task_name, j.priority, j.lock, j.queueing_lock, j.args,
                   j.scheduled_at)::procrastinate_job_to_defer_v1
          FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS (
                   queue_name varchar, task_name varchar, priority integer, lock text,
                   queueing_lock text, args jsonb, scheduled_at timestamptz))
               WITH ORDINALITY AS j(queue_name, task_name, priority, lock, queueing_lock,
                                    args, scheduled_at, n)
         ORDER BY j.n
    ))) AS id
"""


def _iso_time(value: datetime.datetime) -> str:
    if not isinstance(value, datetime.datetime):
        raise TypeError(f"cannot write {type(value).__name__} into a job")
    return value.isoformat()


def defer_jobs(conn: psycopg.Connection, jobs: list[dict]) -> list[int]:
    """Insert jobs (``queue_name``, ``task_name``, ``priority``, ``lock``,
    ``queueing_lock``, ``args``, ``scheduled_at``) in one statement; their ids, in order.
    Raises UniqueViolation when a job's queueing lock is held by a waiting job."""
    rows = conn.execute(DEFER_JOBS, (json.dumps(jobs, default=_iso_time),)).fetchall()
    return [row[0] for row in rows]


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


def count_failed_jobs(
    conn: psycopg.Connection, queue: str, organization_id: int | None, up_to: int
) -> int:
    """Failed jobs of a queue in scope, counted up to ``up_to`` (a bound, not a total)."""
    return conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM procrastinate_jobs j"
        f" WHERE j.status = 'failed' AND j.queue_name = %(queue)s AND {IN_SCOPE}"
        " LIMIT %(up_to)s) AS failed",
        {"queue": queue, "org": _scope(organization_id), "up_to": up_to},
    ).fetchone()[0]


# A batch of a queue's failed jobs in scope, by id after a cursor. Each goes back as
# retry_failed_job puts one back (abort request cleared), unless its task is held back
# (platform-only, for a tenant), it was retried as a copy before, or its idempotency key
# is taken: by a waiting job, or by an earlier job of the batch with the same key.
RETRY_FAILED_BATCH = f"""
    WITH batch AS (
        SELECT j.id, j.task_name, j.queueing_lock,
               j.task_name = ANY (%(held)s) AS held,
               EXISTS (SELECT 1 FROM job_retries r WHERE r.job_id = j.id) AS copied
          FROM (SELECT * FROM procrastinate_jobs j
                 WHERE j.status = 'failed' AND j.queue_name = %(queue)s AND {IN_SCOPE}
                   AND j.id > %(after)s
                OFFSET 0) AS j  -- read through the failed jobs' index, not every id in order
         ORDER BY j.id
         LIMIT %(limit)s
    ), eligible AS (
        SELECT b.id, b.queueing_lock IS NOT NULL AND (
                   b.id <> min(b.id) OVER (PARTITION BY b.queueing_lock)
                   OR EXISTS (SELECT 1 FROM procrastinate_jobs t
                               WHERE t.queueing_lock = b.queueing_lock AND t.status = 'todo')
               ) AS key_taken
          FROM batch b
         WHERE NOT b.held AND NOT b.copied
    ), retried AS (
        UPDATE procrastinate_jobs j
           SET status = 'todo', scheduled_at = now(), abort_requested = false
          FROM eligible e
         WHERE j.id = e.id AND NOT e.key_taken AND j.status = 'failed'
     RETURNING j.id
    )
    SELECT (SELECT max(id) FROM batch) AS last_id,
           (SELECT count(*) FROM retried) AS retried,
           (SELECT min(id) FROM retried) AS first_retried,
           (SELECT count(*) FROM batch WHERE held) AS platform_only,
           (SELECT count(*) FROM batch WHERE copied AND NOT held) AS copied,
           (SELECT count(*) FROM eligible WHERE key_taken) AS key_taken
"""


def retry_failed_jobs_batch(
    conn: psycopg.Connection,
    queue: str,
    organization_id: int | None,
    held_tasks: list[str],
    after_id: int,
    limit: int,
) -> dict:
    """Put up to ``limit`` failed jobs of a queue (in scope, ids after ``after_id``) back in
    it; returns the last id read (None: none left) and counts of those retried and skipped.
    Raises UniqueViolation if a job took one of their idempotency keys meanwhile."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            RETRY_FAILED_BATCH,
            {
                "queue": queue,
                "org": _scope(organization_id),
                "held": held_tasks,
                "after": after_id,
                "limit": limit,
            },
        ).fetchone()
