"""Reads behind the periodic tasks page: the last defer of each schedule and its job."""

import psycopg
from psycopg.rows import dict_row


def list_last_defers(conn: psycopg.Connection, keys: list[tuple[str, str]]) -> list[dict]:
    """For each (task name, periodic id), its latest defer and that job's state, if any.

    Each lookup is a backward scan of Procrastinate's unique index on (task_name,
    periodic_id, defer_timestamp), so it costs the same however long the history is.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT k.task_name, k.periodic_id, to_timestamp(d.defer_timestamp) AS deferred_for,
                   d.job_id,
                   CASE WHEN j.status = 'todo' AND j.scheduled_at > now() THEN 'scheduled'
                        WHEN j.status = 'todo' THEN 'waiting'
                        WHEN j.status = 'doing' THEN 'running'
                        ELSE j.status::text END AS state
            FROM unnest(%(names)s::text[], %(ids)s::text[]) AS k(task_name, periodic_id)
            LEFT JOIN LATERAL (
                SELECT d.defer_timestamp, d.job_id FROM procrastinate_periodic_defers d
                WHERE d.task_name = k.task_name AND d.periodic_id = k.periodic_id
                ORDER BY d.defer_timestamp DESC LIMIT 1
            ) d ON true
            LEFT JOIN procrastinate_jobs j ON j.id = d.job_id
            """,
            {"names": [name for name, _ in keys], "ids": [pid for _, pid in keys]},
        ).fetchall()
