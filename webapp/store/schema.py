"""Bookkeeping for ``flask migrate``: the lock, the record of applied files, and DDL runs.

Nothing here leaves state on the session: the lock ends with its transaction, and no
statement is prepared (psycopg prepares one run five times on a connection), so
``flask migrate`` works through a pooler in transaction mode, where each transaction
may run on another server connection, shared with other clients.
"""

import psycopg
from psycopg.rows import dict_row

# Advisory lock key taken by each migration transaction ("howdah" in ASCII, as a bigint).
MIGRATION_LOCK_KEY = 0x686F77646168


def _execute(conn: psycopg.Connection, query: str, params: tuple = ()) -> psycopg.Cursor:
    """Run one statement, never as a prepared statement."""
    return conn.execute(query, params or None, prepare=False)


def create_migrations_table(conn: psycopg.Connection) -> None:
    """Create ``schema_migrations`` if it does not exist yet."""
    _execute(
        conn,
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            source text NOT NULL,
            name text NOT NULL,
            checksum text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, name)
        )
        """,
    )


def try_lock(conn: psycopg.Connection) -> bool:
    """Take the migration lock until the end of this transaction, if nobody holds it."""
    row = _execute(conn, "SELECT pg_try_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,)).fetchone()
    return bool(row[0])


def lock(conn: psycopg.Connection) -> None:
    """Wait for, then take, the migration lock until the end of this transaction."""
    _execute(conn, "SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))


def migrations_table_exists(conn: psycopg.Connection) -> bool:
    """Whether ``schema_migrations`` exists (it does not on a new database)."""
    row = _execute(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    return bool(row[0])


def procrastinate_installed(conn: psycopg.Connection) -> bool:
    """Whether Procrastinate's job table exists in this database."""
    row = _execute(conn, "SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
    return bool(row[0])


def list_applied(conn: psycopg.Connection) -> list[dict]:
    """Every applied migration: source, name, checksum, applied_at."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT source, name, checksum, applied_at FROM schema_migrations"
            " ORDER BY source, name",
            prepare=False,
        ).fetchall()


def is_applied(conn: psycopg.Connection, source: str, name: str) -> bool:
    """Whether one migration file is recorded as applied."""
    row = _execute(
        conn,
        "SELECT EXISTS (SELECT FROM schema_migrations WHERE source = %s AND name = %s)",
        (source, name),
    ).fetchone()
    return bool(row[0])


def list_applied_names(conn: psycopg.Connection) -> set[tuple[str, str]]:
    """The (source, name) pairs already applied, for readiness checks."""
    rows = _execute(conn, "SELECT source, name FROM schema_migrations").fetchall()
    return {(source, name) for source, name in rows}


def record_applied(conn: psycopg.Connection, source: str, name: str, checksum: str) -> None:
    """Record one migration file as applied."""
    _execute(
        conn,
        "INSERT INTO schema_migrations (source, name, checksum) VALUES (%s, %s, %s)",
        (source, name, checksum),
    )


def run_script(conn: psycopg.Connection, sql: str) -> None:
    """Run a whole SQL file: several statements, no parameters (simple query protocol)."""
    _execute(conn, sql)
