"""Server-level statements (databases), for the embedded dev server and the test suite."""

import psycopg
from psycopg import sql


def database_exists(conn: psycopg.Connection, name: str) -> bool:
    """Whether a database of this name exists on the server."""
    row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def create_database(conn: psycopg.Connection, name: str, template: str = "template0") -> None:
    """Create a database (needs an autocommit connection)."""
    conn.execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    )


def drop_database(conn: psycopg.Connection, name: str) -> None:
    """Drop a database, disconnecting its sessions first (needs autocommit)."""
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
