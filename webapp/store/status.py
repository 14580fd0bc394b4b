"""Read-only queries behind the health and status endpoints."""

import psycopg
from psycopg.rows import dict_row


def get_server_version(conn: psycopg.Connection) -> str:
    """The PostgreSQL server's version string, e.g. ``15.20``."""
    return conn.execute("SELECT split_part(current_setting('server_version'), ' ', 1)").fetchone()[
        0
    ]


def list_workers(conn: psycopg.Connection) -> list[dict]:
    """Procrastinate workers with their last heartbeat and its age in seconds."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT id, last_heartbeat,
                   extract(epoch FROM now() - last_heartbeat)::float AS age_seconds
            FROM procrastinate_workers
            ORDER BY id
            """
        ).fetchall()


def count_jobs_by_queue_and_status(conn: psycopg.Connection) -> list[dict]:
    """Job counts per (queue, status)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT queue_name, status::text AS status, count(*) AS count
            FROM procrastinate_jobs
            GROUP BY queue_name, status
            ORDER BY queue_name, status
            """
        ).fetchall()


def list_oldest_waiting_ages(conn: psycopg.Connection) -> list[dict]:
    """Per queue, how long its longest-waiting runnable job has waited, in seconds.

    A job waits from when it was deferred, or from its ``scheduled_at`` when
    that is later; jobs scheduled in the future are not waiting yet.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT j.queue_name,
                   extract(epoch FROM now() - min(greatest(j.scheduled_at, d.at)))::float
                       AS age_seconds
            FROM procrastinate_jobs j
            LEFT JOIN LATERAL (
                SELECT e.at FROM procrastinate_events e
                WHERE e.job_id = j.id AND e.type = 'deferred'
                ORDER BY e.id LIMIT 1
            ) d ON true
            WHERE j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
            GROUP BY j.queue_name
            """
        ).fetchall()
