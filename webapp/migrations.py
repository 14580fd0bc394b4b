"""Schema migrations: Procrastinate's (from the installed package), then ours.

A new database gets Procrastinate's ``schema.sql`` and every migration file the
package ships is recorded as applied; after a Procrastinate upgrade the
package's new migration files are applied. Then ``migrations/NNNN_*.sql`` run
in order. Each file runs in its own transaction and is recorded in
``schema_migrations`` in it. That transaction first takes an advisory lock that
ends with it, then checks again whether another run applied the file meanwhile:
concurrent runs are safe and a second run changes nothing, straight to
PostgreSQL and through a pooler in transaction mode alike, since no state
outlives a transaction.
"""

import contextlib
import functools
import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import procrastinate.schema
import psycopg

from webapp import paths
from webapp.store import schema as store

log = logging.getLogger(__name__)

PROJECT_DIR = paths.top_level("migrations")
PROCRASTINATE_DIR = Path(procrastinate.schema.migrations_path)
PROCRASTINATE = "procrastinate"
HOWDAH = "howdah"
SCHEMA_FILE = "schema.sql"
PROJECT_NAME = re.compile(r"^\d{4}_[a-z0-9_]+\.sql$")


class MigrationError(Exception):
    """A migration cannot be planned or applied."""


@dataclass(frozen=True)
class Migration:
    """One SQL file to apply once."""

    source: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class Sources:
    """Where the migration files come from (tests point these at other folders)."""

    project_dir: Path = PROJECT_DIR
    procrastinate_dir: Path = PROCRASTINATE_DIR

    def procrastinate(self) -> list[Migration]:
        """The package's migration files, oldest first (their names sort by version)."""
        directory = self.procrastinate_dir
        return list(_read_dir(PROCRASTINATE, directory, _mtime(directory)))

    def project(self) -> list[Migration]:
        """Our migration files, in NNNN order; a badly named file is an error."""
        migrations = _read_dir(HOWDAH, self.project_dir, _mtime(self.project_dir))
        for migration in migrations:
            if not PROJECT_NAME.match(migration.name):
                raise MigrationError(
                    f"{migration.name}: migration files are named NNNN_description.sql"
                )
        return list(migrations)

    def all(self) -> list[Migration]:
        return self.procrastinate() + self.project()

    def expected(self, applied: set[tuple[str, str]]) -> list[Migration]:
        """What a database with these applied files still needs, in order.

        Without any Procrastinate record, that is Procrastinate's schema (which
        covers every migration file the package ships), then ours.
        """
        if not any(source == PROCRASTINATE for source, _ in applied):
            candidates = [procrastinate_schema(), *self.project()]
        else:
            candidates = self.all()
        return [m for m in candidates if (m.source, m.name) not in applied]


def _mtime(directory: Path) -> int:
    return directory.stat().st_mtime_ns


@functools.cache
def _read_dir(source: str, directory: Path, mtime: int) -> tuple[Migration, ...]:
    """Read a folder's *.sql files once per change of the folder (readiness asks often)."""
    paths = sorted(directory.glob("*.sql"))
    return tuple(Migration(source, p.name, p.read_text(encoding="utf-8")) for p in paths)


@functools.cache
def procrastinate_schema() -> Migration:
    """The schema.sql of the installed Procrastinate, as one migration."""
    sql = (resources.files("procrastinate.sql") / SCHEMA_FILE).read_text(encoding="utf-8")
    return Migration(PROCRASTINATE, SCHEMA_FILE, sql)


@dataclass(frozen=True)
class Status:
    """What is applied, what is pending, and applied files that changed since."""

    applied: list[dict]
    pending: list[Migration]
    modified: list[str]


def status(conn: psycopg.Connection, sources: Sources = Sources()) -> Status:
    """Compare the database's record with the files on disk (read-only)."""
    applied = store.list_applied(conn) if store.migrations_table_exists(conn) else []
    checksums = {(row["source"], row["name"]): row["checksum"] for row in applied}
    modified = [
        m.name
        for m in sources.project()
        if checksums.get((m.source, m.name), m.checksum) != m.checksum
    ]
    return Status(applied=applied, pending=sources.expected(set(checksums)), modified=modified)


def pending_names(conn: psycopg.Connection, sources: Sources = Sources()) -> list[str]:
    """Names of files not yet applied (the readiness check)."""
    done = store.list_applied_names(conn) if store.migrations_table_exists(conn) else set()
    return [f"{m.source}/{m.name}" for m in sources.expected(done)]


def migrate(
    conn: psycopg.Connection,
    sources: Sources = Sources(),
    echo: Callable[[str], None] = log.info,
) -> list[str]:
    """Apply everything pending, one locked transaction a step; return the names applied."""
    if not conn.autocommit:
        raise MigrationError("migrate() needs an autocommit connection")
    run = _Run(conn, echo)
    with run.locked():
        store.create_migrations_table(conn)
    applied = _install_procrastinate(run, sources)
    for migration in sources.expected(store.list_applied_names(conn)):
        if _apply(run, migration):
            applied.append(f"{migration.source}/{migration.name}")
    return applied


@dataclass
class _Run:
    """One ``migrate()`` run: its connection, its output, and whether it said it waits."""

    conn: psycopg.Connection
    echo: Callable[[str], None]
    waited: bool = False

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """A transaction holding the migration lock from its start to its end."""
        with self.conn.transaction():
            if not store.try_lock(self.conn):
                if not self.waited:
                    self.echo("Another migration run holds the lock; waiting for it to finish.")
                    self.waited = True
                store.lock(self.conn)
            yield


def _install_procrastinate(run: _Run, sources: Sources) -> list[str]:
    """On a database without Procrastinate, apply its schema and baseline its migrations."""
    schema = procrastinate_schema()
    try:
        with run.locked():
            if any(source == PROCRASTINATE for source, _ in store.list_applied_names(run.conn)):
                return []
            if store.procrastinate_installed(run.conn):
                raise MigrationError(
                    "Procrastinate's tables exist but were not installed by `flask migrate`, so "
                    "their version is unknown; migrate a new database, or record the applied "
                    "Procrastinate migrations in schema_migrations by hand."
                )
            run.echo(f"Installing Procrastinate {procrastinate.__version__} schema")
            store.run_script(run.conn, schema.sql)
            for migration in [schema, *sources.procrastinate()]:
                store.record_applied(run.conn, migration.source, migration.name, migration.checksum)
    except psycopg.Error as exc:
        raise MigrationError(f"installing Procrastinate's schema failed: {exc}") from exc
    return [f"{PROCRASTINATE}/{SCHEMA_FILE}"]


def _apply(run: _Run, migration: Migration) -> bool:
    """Apply one file unless another run did meanwhile; whether this run applied it."""
    try:
        with run.locked():
            if store.is_applied(run.conn, migration.source, migration.name):
                return False
            run.echo(f"Applying {migration.source}/{migration.name}")
            store.run_script(run.conn, migration.sql)
            store.record_applied(run.conn, migration.source, migration.name, migration.checksum)
    except psycopg.Error as exc:
        raise MigrationError(f"{migration.source}/{migration.name} failed: {exc}") from exc
    return True
