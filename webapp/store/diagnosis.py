"""The facts behind "why is this job not running?": each one an indexed, bounded read."""

import psycopg
from psycopg.rows import dict_row


def get_queue_settings(conn: psycopg.Connection, queue: str) -> dict | None:
    """A queue's pause and caps, if anything was ever set for it."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT paused_at, paused_by, max_running, organization_max_running"
            " FROM queue_settings WHERE queue_name = %s",
            (queue,),
        ).fetchone()


def find_lock_holder(
    conn: psycopg.Connection, lock: str, priority: int, job_id: int
) -> dict | None:
    """The job that keeps this one waiting for its lock (Procrastinate's rule, see
    howdah_waits_for_lock): one running with the lock, else the first one waiting ahead
    with it (higher priority, or the same and deferred first), even one set for later."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            (SELECT id, status::text AS status, scheduled_at FROM procrastinate_jobs
              WHERE lock = %(lock)s AND status = 'doing')
            UNION ALL
            (SELECT id, status::text, scheduled_at FROM procrastinate_jobs
              WHERE lock = %(lock)s AND status = 'todo'
                AND (priority > %(priority)s OR (priority = %(priority)s AND id < %(id)s))
              ORDER BY priority DESC, id LIMIT 1)
            LIMIT 1
            """,
            {"lock": lock, "priority": priority, "id": job_id},
        ).fetchone()


def list_live_workers(conn: psycopg.Connection, queue: str, stale_seconds: int) -> list[dict]:
    """Workers with a fresh heartbeat that take jobs from ``queue``, with their slots and
    the jobs they run now (of any queue they serve)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT r.worker_id, r.name, r.concurrency,
                   (SELECT count(*) FROM procrastinate_jobs j
                     WHERE j.worker_id = r.worker_id AND j.status = 'doing') AS running
            FROM worker_registry r
            JOIN procrastinate_workers w ON w.id = r.worker_id
            WHERE r.stopped_at IS NULL
              AND w.last_heartbeat > now() - make_interval(secs => %(stale)s)
              AND (r.queues IS NULL OR %(queue)s = ANY (r.queues))
            ORDER BY r.worker_id
            """,
            {"queue": queue, "stale": stale_seconds},
        ).fetchall()


def list_running_tasks(
    conn: psycopg.Connection, worker_ids: list[int], organization_id: int | None, limit: int
) -> list[dict]:
    """What these workers run now, of one organization (``None``: of all, for a platform
    admin; no tenant learns another's tasks): the most frequent tasks, how many of each."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT task_name, count(*) AS running FROM procrastinate_jobs"
            " WHERE worker_id = ANY(%(workers)s) AND status = 'doing'"
            " AND (%(org)s::text IS NULL OR args ->> 'organization_id' = %(org)s::text)"
            " GROUP BY task_name ORDER BY count(*) DESC, task_name LIMIT %(limit)s",
            {"workers": worker_ids, "org": organization_id, "limit": limit},
        ).fetchall()


def count_running(conn: psycopg.Connection, queue: str, organization_id: int | None) -> dict:
    """Jobs running in a queue, and those of one organization among them."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT count(*) AS queue,"
            " count(*) FILTER (WHERE args ->> 'organization_id' = %(org)s::text) AS organization"
            " FROM procrastinate_jobs WHERE status = 'doing' AND queue_name = %(queue)s",
            {"queue": queue, "org": organization_id},
        ).fetchone()


def count_jobs_ahead(
    conn: psycopg.Connection, queue: str, priority: int, job_id: int, limit: int
) -> dict:
    """Jobs due now that a worker takes before this one in its queue (higher priority, or
    the same and deferred first), reading at most ``limit`` index entries of each kind;
    ``more`` says a bound was reached, so there may be more."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            WITH higher AS (
                SELECT scheduled_at FROM procrastinate_jobs
                WHERE status = 'todo' AND queue_name = %(queue)s AND priority > %(priority)s
                LIMIT %(limit)s
            ), same AS (
                SELECT scheduled_at FROM procrastinate_jobs
                WHERE status = 'todo' AND queue_name = %(queue)s
                  AND priority = %(priority)s AND id < %(id)s
                LIMIT %(limit)s
            ), read AS (
                SELECT scheduled_at, 'higher' AS kind FROM higher
                UNION ALL
                SELECT scheduled_at, 'same' FROM same
            )
            SELECT count(*) FILTER (WHERE scheduled_at IS NULL OR scheduled_at <= now())
                       AS ahead,
                   count(*) FILTER (WHERE kind = 'higher') >= %(limit)s
                       OR count(*) FILTER (WHERE kind = 'same') >= %(limit)s AS more
            FROM read
            """,
            {"queue": queue, "priority": priority, "id": job_id, "limit": limit},
        ).fetchone()
