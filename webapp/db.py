"""The web process's PostgreSQL pool, and the request's connection on ``g``.

The pool opens lazily, once per process id, so it is never shared across a
fork (gunicorn's master never opens it; each worker opens its own, eagerly
from ``webapp/gunicorn_conf.py`` or on first use).
"""

import logging
import os
import threading

import psycopg
import psycopg_pool
from flask import Flask, current_app, g

from webapp import connections
from webapp.store import database as database_store
from webapp.store import loaders

log = logging.getLogger(__name__)

EXTENSION = "howdah_db"

# psycopg_pool retries a failed connection with doubling delays until this timeout; a
# short one keeps the delays short, so the pool is back soon after the database.
RECONNECT_TIMEOUT = 5.0

# Errors that mean "the database is not there right now": answered 503.
UNAVAILABLE_ERRORS = (psycopg.OperationalError, psycopg_pool.PoolTimeout)


def _configure(conn: psycopg.Connection) -> None:
    """Pool connections run in autocommit (views open transactions explicitly) and read
    any row PostgreSQL can hold."""
    conn.autocommit = True
    loaders.register(conn)


def connect_kwargs(config: dict, application_name: str) -> dict:
    """libpq and psycopg options for each pool connection.

    Straight to PostgreSQL, the timeouts ride on the startup packet and psycopg
    prepares the statements it runs often. Through a transaction pooler each
    transaction may run on another server connection: a statement prepared on one is
    missing (or already taken) on the next, and PgBouncer 1.18 refuses the ``options``
    startup parameter. There the pooler sets the timeouts when it opens its server
    connections (pgbouncer.ini's ``connect_query``, see the README), which
    ``check_pooler_timeouts`` compares with the settings.
    """
    kwargs = {"connect_timeout": config["DB_CONNECT_TIMEOUT"], "application_name": application_name}
    if config["DATABASE_TRANSACTION_POOLING"]:
        kwargs["prepare_threshold"] = None
    else:
        kwargs["options"] = (
            f"-c statement_timeout={config['DB_STATEMENT_TIMEOUT_MS']}"
            f" -c lock_timeout={config['DB_LOCK_TIMEOUT_MS']}"
        )
    return kwargs


def check_pooler_timeouts(conn: psycopg.Connection, config: dict) -> None:
    """Warn when the server connections behind the pooler do not carry the timeouts the
    settings ask for."""
    wanted = (config["DB_STATEMENT_TIMEOUT_MS"], config["DB_LOCK_TIMEOUT_MS"])
    found = database_store.get_timeouts(conn)
    if found != wanted:
        log.warning(
            "through the transaction pooler, statement_timeout is %s ms and lock_timeout %s ms,"
            " not DB_STATEMENT_TIMEOUT_MS=%s and DB_LOCK_TIMEOUT_MS=%s: set them in the"
            " pooler (pgbouncer.ini connect_query, see the README's PgBouncer section)",
            *found,
            *wanted,
            extra={"action": "db_pooler_timeouts"},
        )


def check_connection(conn: psycopg.Connection) -> None:
    """Check a connection before lending it, with a round trip only when it may be dead."""
    if connections.may_be_closed(conn):
        psycopg_pool.ConnectionPool.check_connection(conn)


class Database:
    """A psycopg pool owned by exactly one process."""

    def __init__(self, config: dict, application_name: str = "howdah-web"):
        self._config = config
        self._application_name = application_name
        self._pool: psycopg_pool.ConnectionPool | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._pooler_checked = False
        self._check_lock = threading.Lock()

    @property
    def pool(self) -> psycopg_pool.ConnectionPool:
        """This process's pool, opened on first use."""
        if self._pool is None or self._pid != os.getpid():
            self.open()
        return self._pool

    def open(self) -> None:
        """Open the pool in this process (idempotent; never blocks on the database)."""
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                return
            config = self._config
            pool = psycopg_pool.ConnectionPool(
                conninfo=config["DATABASE_URL"],
                min_size=config["DB_POOL_MIN_SIZE"],
                max_size=config["DB_POOL_MAX_SIZE"],
                kwargs=connect_kwargs(config, self._application_name),
                configure=self._configure,
                check=check_connection,
                reconnect_timeout=RECONNECT_TIMEOUT,
                name=f"{self._application_name}-{os.getpid()}",
                open=False,
            )
            self._pooler_checked = False  # once per process: a fork checks again
            pool.open(wait=False)
            self._pool, self._pid = pool, os.getpid()
            log.info("database pool opened", extra={"action": "db_pool_open"})

    def _configure(self, conn: psycopg.Connection) -> None:
        """Set up a new pool connection; behind a transaction pooler, the first one of
        this process also checks the timeouts the pooler applies."""
        _configure(conn)
        if not self._config["DATABASE_TRANSACTION_POOLING"] or self._pooler_checked:
            return
        with self._check_lock:  # the pool opens connections from several threads at once
            if not self._pooler_checked:
                check_pooler_timeouts(conn, self._config)
                self._pooler_checked = True

    def close(self) -> None:
        """Close this process's pool, if it opened one."""
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close()
            self._pool = self._pid = None


def get_db(app: Flask | None = None) -> Database:
    """The app's Database extension."""
    return (app or current_app).extensions[EXTENSION]


def get_conn() -> psycopg.Connection:
    """The request's connection, taken from the pool on first use."""
    if "db_conn" not in g:
        db = get_db()
        g.db_conn = db.pool.getconn(timeout=current_app.config["DB_POOL_TIMEOUT"])
    return g.db_conn


def release_conn(exc: BaseException | None = None) -> None:
    """Roll back whatever the request left open and give the connection back."""
    conn = g.pop("db_conn", None)
    if conn is None:
        return
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        try:
            conn.rollback()
        except psycopg.Error:
            log.warning("rollback failed while releasing a connection", exc_info=True)
    get_db().pool.putconn(conn)


def init_app(app: Flask) -> None:
    """Attach an unopened Database to the app and return connections after each request."""
    app.extensions[EXTENSION] = Database(app.config)
    app.teardown_appcontext(release_conn)
