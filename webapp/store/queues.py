"""Per-queue settings read by ``howdah_fetch_jobs``: caps on running jobs, and pauses."""

import psycopg
from psycopg.rows import dict_row


def upsert_queue_limits(
    conn: psycopg.Connection,
    queue: str,
    max_running: int | None,
    organization_max_running: int | None,
) -> dict:
    """Set a queue's caps (None: no cap) and return its row."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            INSERT INTO queue_settings (queue_name, max_running, organization_max_running)
            VALUES (%s, %s, %s)
            ON CONFLICT (queue_name) DO UPDATE SET
                max_running = excluded.max_running,
                organization_max_running = excluded.organization_max_running,
                updated_at = now()
            RETURNING queue_name, max_running, organization_max_running, updated_at
            """,
            (queue, max_running, organization_max_running),
        ).fetchone()


def list_queue_settings(conn: psycopg.Connection) -> list[dict]:
    """Every queue's settings, by name."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT queue_name, max_running, organization_max_running, paused_at, paused_by,"
            " updated_at FROM queue_settings ORDER BY queue_name"
        ).fetchall()


# Procrastinate's worker wakes on its queue's channel and on the channel of every queue,
# with the payload its insert trigger sends (procrastinate_notify_queue_job_inserted_v1);
# Howdah's worker listens on the same channels. Neither reads the job id of a
# 'job_inserted' notification; it names a waiting job when there is one without a time.
WAKE_WORKERS = """
    pg_notify('procrastinate_queue_v1#' || {queue}, {payload}),
    pg_notify('procrastinate_any_queue_v1', {payload})
"""
JOB_INSERTED = """json_build_object('type', 'job_inserted', 'job_id', (
    SELECT j.id FROM procrastinate_jobs j
     WHERE j.queue_name = {queue} AND j.status = 'todo' AND j.scheduled_at IS NULL
     ORDER BY j.queue_name, coalesce(j.args ->> 'organization_id', ''), j.priority DESC, j.id
     LIMIT 1))::text"""


def pause_queue(conn: psycopg.Connection, queue: str, by: str) -> dict:
    """Pause a queue (workers take none of its jobs); a paused queue keeps its first pause."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            INSERT INTO queue_settings (queue_name, paused_at, paused_by)
            VALUES (%(queue)s, now(), %(by)s)
            ON CONFLICT (queue_name) DO UPDATE SET
                paused_at = coalesce(queue_settings.paused_at, excluded.paused_at),
                paused_by = CASE WHEN queue_settings.paused_at IS NULL
                                 THEN excluded.paused_by ELSE queue_settings.paused_by END,
                updated_at = now()
            RETURNING queue_name, paused_at, paused_by, paused_at = now() AS changed
            """,
            {"queue": queue, "by": by},
        ).fetchone()


def resume_queue(conn: psycopg.Connection, queue: str) -> dict | None:
    """Resume a paused queue and wake the workers (at commit); None if it was not paused."""
    payload = JOB_INSERTED.format(queue="r.queue_name")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""
            WITH resumed AS (
                UPDATE queue_settings s
                   SET paused_at = NULL, paused_by = NULL, updated_at = now()
                  FROM queue_settings old
                 WHERE s.queue_name = %(queue)s AND old.queue_name = s.queue_name
                   AND old.paused_at IS NOT NULL
             RETURNING s.queue_name, old.paused_at, old.paused_by
            )
            SELECT r.queue_name, r.paused_at, r.paused_by,
                   {WAKE_WORKERS.format(queue="r.queue_name", payload=payload)}
              FROM resumed r
            """,
            {"queue": queue},
        ).fetchone()


def wake_workers(conn: psycopg.Connection, queue: str, job_id: int) -> None:
    """Tell the workers of a queue that jobs wait in it, naming one (sent at commit)."""
    payload = "json_build_object('type', 'job_inserted', 'job_id', %(job)s::bigint)::text"
    conn.execute(
        f"SELECT {WAKE_WORKERS.format(queue='%(queue)s', payload=payload)}",
        {"queue": queue, "job": job_id},
    )


def get_pause(conn: psycopg.Connection, queue: str) -> dict | None:
    """Since when and by whom a queue is paused; None if it is not."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT queue_name, paused_at, paused_by FROM queue_settings"
            " WHERE queue_name = %s AND paused_at IS NOT NULL",
            (queue,),
        ).fetchone()
