"""Shared fixtures: a real PostgreSQL, a migrated database per session, apps and clients."""

import os

import psycopg
import pytest

from tests import databases
from webapp import create_app, db, migrations

# Settings the suite sets itself; inherited values would make runs differ (and
# DATABASE_URL must never be touched by tests).
OWN_NAMES = {"DATABASE_URL", "SECRET_KEY", "PORT", "LOG_LEVEL", "QUEUE_MAX_WAIT_SECONDS"}
OWN_PREFIXES = ("PROCRASTINATE_", "HOWDAH_", "WEB_", "WORKER_", "DB_")
TEST_SECRET = "test-secret-key-0123456789abcdef"


@pytest.fixture(scope="session", autouse=True)
def clean_environ():
    """Strip our settings and Procrastinate's from the environment for the session."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name in OWN_NAMES or name.startswith(OWN_PREFIXES):
                mp.delenv(name)
        yield


@pytest.fixture(scope="session")
def pg_server(clean_environ):
    """The session's PostgreSQL server (see tests/databases.py for where it comes from)."""
    with databases.provide_server() as server:
        yield server


@pytest.fixture(scope="session")
def migrated_url(pg_server):
    """One database migrated once per session; tests share it and truncate between them."""
    url = pg_server.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.migrate(conn)
    yield url
    pg_server.drop_database(url)


def truncate_all(conn: psycopg.Connection) -> None:
    """Empty every table but the migration record, in one statement."""
    tables = conn.execute(
        "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables"
        " WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
    ).fetchone()[0]
    conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


@pytest.fixture
def db_url(migrated_url):
    """The session's migrated database, emptied for this test."""
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        truncate_all(conn)
    return migrated_url


@pytest.fixture
def conn(db_url):
    """An autocommit connection to the test database, for arranging and asserting."""
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def empty_db_url(pg_server):
    """A new, empty database for this test only."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)


@pytest.fixture
def make_app():
    """Build apps from settings; their pools are closed after the test."""
    apps = []

    def factory(database_url: str, **overrides: str):
        config = {"DATABASE_URL": database_url, "SECRET_KEY": TEST_SECRET, **overrides}
        app = create_app(config)
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield factory
    for app in apps:
        db.get_db(app).close()


@pytest.fixture
def app(make_app, db_url):
    """The app on the migrated test database."""
    return make_app(db_url)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()
