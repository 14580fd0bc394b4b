"""Reads behind GET /metrics: live job counts from indexes alone, and the rollups.

Waiting and running jobs are counted by index-only scans of the partial indexes that
hold only them, so their cost follows the backlog, not the table. The rollups are small
whatever the size of the job tables: ``attempt_counts`` holds the last hours and one
folded row per task, outcome and duration bucket (migration 0030); ``sms_status_counts``
a few rows per status (migration 0031).
"""

import psycopg
from psycopg.rows import dict_row


def count_waiting_jobs(conn: psycopg.Connection) -> list[dict]:
    """Per queue, its ``todo`` jobs, and in seconds how long the longest-waiting runnable
    one has waited (None: none is runnable). Ids grow with time, so the oldest job without
    a time is the one with the lowest id; it waits since its deferral, a job with a time
    since that time."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            WITH todo AS (
                SELECT queue_name, count(*) AS jobs,
                       min(id) FILTER (WHERE scheduled_at IS NULL) AS oldest_id,
                       min(scheduled_at) FILTER (WHERE scheduled_at <= now()) AS first_due
                FROM procrastinate_jobs
                WHERE status = 'todo'
                GROUP BY queue_name
            )
            SELECT t.queue_name, t.jobs,
                   extract(epoch FROM now() - least(
                       (SELECT min(e.at) FROM procrastinate_events e
                        WHERE e.job_id = t.oldest_id AND e.type = 'deferred'),
                       t.first_due
                   ))::float AS oldest_age
            FROM todo t
            """
        ).fetchall()


def count_running_jobs(conn: psycopg.Connection) -> list[dict]:
    """Per queue, its ``doing`` jobs."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT queue_name, count(*) AS jobs FROM procrastinate_jobs"
            " WHERE status = 'doing' GROUP BY queue_name"
        ).fetchall()


def get_attempt_bounds(conn: psycopg.Connection) -> list[float]:
    """The upper bounds, in seconds, of the attempt-duration buckets."""
    return conn.execute("SELECT howdah_attempt_bounds()").fetchone()[0]


def list_attempt_totals(conn: psycopg.Connection) -> list[dict]:
    """Per task, outcome and duration bucket, the attempts ever ended and their seconds."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT task_name, outcome, slot, sum(attempts)::bigint AS attempts,
                   sum(seconds) AS seconds
            FROM attempt_counts
            GROUP BY task_name, outcome, slot
            """
        ).fetchall()


def count_sms_by_status(conn: psycopg.Connection) -> list[dict]:
    """SMS message records by status."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT status, sum(messages)::bigint AS messages FROM sms_status_counts"
            " GROUP BY status"
        ).fetchall()
