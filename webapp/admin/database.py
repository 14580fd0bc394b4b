"""The database health page (platform admins): what a queue on PostgreSQL suffers from.

Every part is read in a transaction of its own under short timeouts, so a table locked
by a migration or a slow catalog costs that part ("unavailable"), never the page.
"""

import logging

import psycopg
from flask import render_template

from webapp import db
from webapp.admin import bp, platform_page
from webapp.store import database as store

log = logging.getLogger(__name__)

STATEMENT_TIMEOUT_MS = 2000  # each part reads statistics views and catalogs only
LOCK_TIMEOUT_MS = 200  # a health page must never queue behind the locks it reports
OLDEST_TRANSACTIONS = 5
GIVE_UP = (
    psycopg.errors.QueryCanceled,
    psycopg.errors.LockNotAvailable,
    psycopg.errors.InsufficientPrivilege,
)

PARTS = {
    "tables": store.list_table_stats,
    "transactions": lambda conn: store.list_oldest_transactions(conn, OLDEST_TRANSACTIONS),
    "server": store.get_server_figures,
    "connections": store.count_connections,
    "lock_waits": store.list_lock_waits,
}


def read_part(conn: psycopg.Connection, name: str, read) -> object | None:
    """One part of the page under short timeouts; None when it could not be read in time."""
    try:
        with conn.transaction():
            store.set_local_timeouts(conn, STATEMENT_TIMEOUT_MS, LOCK_TIMEOUT_MS)
            return read(conn)
    except GIVE_UP as exc:
        log.warning("database page: %s unavailable: %s", name, exc, extra={"action": "database"})
        return None


@bp.get("/database")
@platform_page
def database():
    """Table sizes and vacuum, old transactions, NOTIFY queue, connections and lock waits."""
    conn = db.get_conn()
    parts = {name: read_part(conn, name, read) for name, read in PARTS.items()}
    return render_template("admin/database/show.html", **parts)
