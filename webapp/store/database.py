"""Reads behind the database health page: PostgreSQL's own statistics for this database.

Each read is cheap but may meet a lock (``pg_total_relation_size`` opens the table), so
callers run them under short timeouts set by ``set_local_timeouts``.
"""

import psycopg
from psycopg.rows import dict_row

QUERY_CHARS = 200  # of a backend's query text; enough to recognise it


def set_local_timeouts(conn: psycopg.Connection, statement_ms: int, lock_ms: int) -> None:
    """Bound every statement of the current transaction, and any wait for a lock in it."""
    conn.execute(
        "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)",
        (f"{statement_ms}ms", f"{lock_ms}ms"),
    )


def get_timeouts(conn: psycopg.Connection) -> tuple[int, int]:
    """The session's statement_timeout and lock_timeout, in milliseconds."""
    row = conn.execute(
        "SELECT current_setting('statement_timeout')::interval,"
        " current_setting('lock_timeout')::interval"
    ).fetchone()
    return tuple(round(value.total_seconds() * 1000) for value in row)


def list_table_stats(conn: psycopg.Connection) -> list[dict]:
    """The tables of our schema, largest first: size, live and dead rows, last vacuum and
    analyze (by hand or by autovacuum)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT s.relname AS name, pg_total_relation_size(s.relid) AS total_bytes,
                   pg_size_pretty(pg_total_relation_size(s.relid)) AS total_size,
                   s.n_live_tup AS live_rows, s.n_dead_tup AS dead_rows,
                   round(100.0 * s.n_dead_tup / nullif(s.n_live_tup + s.n_dead_tup, 0), 1)
                       AS dead_percent,
                   s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze
            FROM pg_stat_user_tables s
            WHERE s.schemaname = current_schema()
            ORDER BY total_bytes DESC, s.relname
            """
        ).fetchall()


def list_oldest_transactions(conn: psycopg.Connection, limit: int) -> list[dict]:
    """The oldest open transactions in this database (but ours): they hold vacuum back."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT pid, application_name, state, wait_event_type, xact_start,
                   extract(epoch FROM now() - xact_start)::float AS age_seconds,
                   age(backend_xmin) AS xmin_age, left(query, %(chars)s) AS query
            FROM pg_stat_activity
            WHERE datname = current_database() AND xact_start IS NOT NULL
              AND pid <> pg_backend_pid()
            ORDER BY xact_start, pid LIMIT %(limit)s
            """,
            {"chars": QUERY_CHARS, "limit": limit},
        ).fetchall()


def get_server_figures(conn: psycopg.Connection) -> dict:
    """The NOTIFY queue's usage in percent, and connections against the server's limit."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT pg_notification_queue_usage() * 100 AS notify_percent,
                   current_setting('max_connections')::int AS max_connections,
                   (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')
                       AS server_connections
            """
        ).fetchone()


def count_connections(conn: psycopg.Connection) -> list[dict]:
    """Connections to this database by application name and state."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT coalesce(nullif(application_name, ''), '(none)') AS application_name,
                   coalesce(state, '(none)') AS state, count(*) AS connections
            FROM pg_stat_activity
            WHERE datname = current_database()
            GROUP BY 1, 2 ORDER BY 1, 2
            """
        ).fetchall()


def list_lock_waits(conn: psycopg.Connection) -> list[dict]:
    """Backends of this database waiting for a lock while touching our tables, one row per
    backend blocking them: who waits, for what and how long, and who holds it up."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT w.pid AS waiting_pid, w.application_name AS waiting_application,
                   left(w.query, %(chars)s) AS waiting_query,
                   extract(epoch FROM now() - coalesce(wl.waitstart, w.query_start))::float
                       AS waiting_seconds,
                   wl.locktype, wl.mode, rel.names AS tables,
                   b.pid AS blocking_pid, b.application_name AS blocking_application,
                   b.state AS blocking_state,
                   extract(epoch FROM now() - b.xact_start)::float AS blocking_xact_seconds,
                   left(b.query, %(chars)s) AS blocking_query
            FROM pg_stat_activity w
            JOIN pg_locks wl ON wl.pid = w.pid AND NOT wl.granted
            CROSS JOIN LATERAL (
                SELECT string_agg(DISTINCT c.relname, ', ') AS names
                FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                WHERE l.pid = w.pid AND c.relkind IN ('r', 'p')
                  AND c.relnamespace = current_schema()::regnamespace
            ) rel
            CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocker(pid)
            JOIN pg_stat_activity b ON b.pid = blocker.pid
            WHERE w.datname = current_database() AND rel.names IS NOT NULL
            ORDER BY waiting_seconds DESC, w.pid, b.pid
            """,
            {"chars": QUERY_CHARS},
        ).fetchall()
