"""Reads behind GET /metrics that no other page makes: the cumulative rollups.

Both tables are small whatever the size of the job tables: ``attempt_counts`` holds the
last hours and one folded row per task, outcome and duration bucket (migration 0030);
``sms_status_counts`` a few rows per status (migration 0031).
"""

import psycopg
from psycopg.rows import dict_row


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
