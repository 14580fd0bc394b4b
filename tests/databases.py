"""Where the test suite's PostgreSQL comes from, and helpers to make databases on it.

In order: TEST_DATABASE_URL; a testcontainers PostgresContainer when a Docker
daemon answers a ping; an embedded PostgreSQL with its data in ./var/ (one
folder per pytest-xdist worker).
The suite only ever creates and drops its own ``howdah_test_*`` databases.
"""

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from tests.processes import scratch_dir
from webapp.embedded import EmbeddedPostgres
from webapp.store import server as server_store

log = logging.getLogger(__name__)

POSTGRES_IMAGE = "postgres:16-alpine"
DOCKER_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True)
class Server:
    """A PostgreSQL server the suite may create databases on."""

    admin_url: str
    origin: str

    def url(self, database: str) -> str:
        """The URL of another database on the same server."""
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    def create_database(self, template: str = "template0") -> str:
        """Create a uniquely named test database; return its URL."""
        name = f"howdah_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            server_store.create_database(conn, name, template=template)
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database this suite created."""
        name = urlsplit(url).path.lstrip("/")
        if not name.startswith("howdah_test_"):
            raise ValueError(f"refusing to drop {name!r}: not a test database")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            server_store.drop_database(conn, name)


def docker_answers() -> bool:
    """Whether a Docker daemon answers a ping within two seconds."""
    if not os.environ.get("DOCKER_HOST") and not Path(DOCKER_SOCKET).exists():
        return False  # nothing to ask (and the client would leak a socket finding that out)
    import docker

    try:
        client = docker.from_env(timeout=2)
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def provide_server() -> Iterator[Server]:
    """Yield the session's server, started (and stopped) here when the suite owns it."""
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if url:
        yield Server(url, "TEST_DATABASE_URL")
    elif docker_answers():
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer(POSTGRES_IMAGE, driver=None) as container:
            yield Server(container.get_connection_url(), f"testcontainers {POSTGRES_IMAGE}")
    else:
        embedded = EmbeddedPostgres(scratch_dir("test-pgdata")).start()
        try:
            yield Server(embedded.url(), "embedded PostgreSQL")
        finally:
            embedded.stop()


class RestartableServer:
    """An embedded PostgreSQL of this test process's own, which tests stop and restart."""

    def __init__(self):
        self._server = EmbeddedPostgres(scratch_dir("test-faults-pgdata"))

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def restart(self) -> None:
        """Stop (fast: sessions are cut) and start again, like ``pg_ctl restart -m fast``."""
        self.stop()
        self.start()

    def admin_url(self) -> str:
        """The URL of the server's ``postgres`` database, for statements about others."""
        return self._server.url()

    def migrated_database(self) -> str:
        """A new database with every migration applied; returns its URL."""
        from webapp import migrations

        name = f"howdah_test_{uuid.uuid4().hex[:12]}"
        url = self._server.ensure_database(name)
        with psycopg.connect(url, autocommit=True) as conn:
            migrations.migrate(conn)
        return url
