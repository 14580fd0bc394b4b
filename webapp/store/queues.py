"""Per-queue settings: caps on running jobs (read by ``howdah_fetch_jobs``)."""

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
            "SELECT queue_name, max_running, organization_max_running, updated_at"
            " FROM queue_settings ORDER BY queue_name"
        ).fetchall()
