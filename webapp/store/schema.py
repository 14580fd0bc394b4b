"""Bookkeeping for ``flask migrate``: the lock, the record of applied files, and DDL runs."""

import psycopg
from psycopg.rows import dict_row

# pg_advisory_lock key held while migrating ("howdah" in ASCII, as a bigint).
MIGRATION_LOCK_KEY = 0x686F77646168


def create_migrations_table(conn: psycopg.Connection) -> None:
    """Create ``schema_migrations`` if it does not exist yet."""
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            source text NOT NULL,
            name text NOT NULL,
            checksum text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, name)
        )
        """
    )


def try_lock(conn: psycopg.Connection) -> bool:
    """Take the migration lock for this session if nobody holds it."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK_KEY,)).fetchone()
    return bool(row[0])


def lock(conn: psycopg.Connection) -> None:
    """Wait for, then take, the migration lock for this session."""
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))


def unlock(conn: psycopg.Connection) -> None:
    """Release the migration lock."""
    conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


def migrations_table_exists(conn: psycopg.Connection) -> bool:
    """Whether ``schema_migrations`` exists (it does not on a new database)."""
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    return bool(row[0])


def procrastinate_installed(conn: psycopg.Connection) -> bool:
    """Whether Procrastinate's job table exists in this database."""
    row = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
    return bool(row[0])


def list_applied(conn: psycopg.Connection) -> list[dict]:
    """Every applied migration: source, name, checksum, applied_at."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT source, name, checksum, applied_at FROM schema_migrations ORDER BY source, name"
        ).fetchall()


def list_applied_names(conn: psycopg.Connection) -> set[tuple[str, str]]:
    """The (source, name) pairs already applied, for readiness checks."""
    rows = conn.execute("SELECT source, name FROM schema_migrations").fetchall()
    return {(source, name) for source, name in rows}


def record_applied(conn: psycopg.Connection, source: str, name: str, checksum: str) -> None:
    """Record one migration file as applied."""
    conn.execute(
        "INSERT INTO schema_migrations (source, name, checksum) VALUES (%s, %s, %s)",
        (source, name, checksum),
    )


def run_script(conn: psycopg.Connection, sql: str) -> None:
    """Run a whole SQL file: several statements, no parameters (simple query protocol)."""
    conn.execute(sql)
