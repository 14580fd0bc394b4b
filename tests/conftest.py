"""Shared fixtures: a real PostgreSQL, a migrated database per session, apps and clients."""

import functools
import os
import re
import types

import psycopg
import pytest

from tests import databases, processes
from webapp import accounts, create_app, db, migrations
from webapp.store import accounts as account_store

# Settings the suite sets itself; inherited values would make runs differ (and
# DATABASE_URL must never be touched by tests).
OWN_NAMES = {
    "DATABASE_URL",
    "DIRECT_DATABASE_URL",
    "DATABASE_TRANSACTION_POOLING",
    "SECRET_KEY",
    "PORT",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "QUEUE_MAX_WAIT_SECONDS",
    "PUBLIC_URL",
}
OWN_PREFIXES = ("PROCRASTINATE_", "HOWDAH_", "WEB_", "WORKER_", "DB_", "ORG_", "JOB_", "LOST_JOB_")
OWN_PREFIXES += ("SMS_", "TELNYX_", "EMAIL_", "SMTP_")
TEST_SECRET = "test-secret-key-0123456789abcdef"
TEST_PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session", autouse=True)
def clean_environ():
    """Strip our settings and Procrastinate's from the environment for the session."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name in OWN_NAMES or name.startswith(OWN_PREFIXES):
                mp.delenv(name)
        yield


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Kill what a test started and left running (see ``processes.started``). Autouse, so
    set up first and torn down last, after the fixtures that stop their own processes."""
    yield
    processes.kill_leftovers()


@pytest.fixture(scope="session")
def pg_server(clean_environ):
    """The session's PostgreSQL server (see tests/databases.py for where it comes from)."""
    with databases.provide_server() as server:
        yield server


@pytest.fixture(scope="session")
def restartable_server(clean_environ):
    """A PostgreSQL server of the suite's own, which tests may stop and restart."""
    server = databases.RestartableServer()
    yield server
    server.stop()


@pytest.fixture
def own_server(restartable_server):
    """The restartable server, running at the start and at the end of the test."""
    restartable_server.start()
    yield restartable_server
    restartable_server.start()


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
def orgs(conn):
    """Two organizations: ``orgs.a`` (id 1, Acme) and ``orgs.b`` (id 2, Globex)."""
    a = account_store.insert_organization(conn, "Acme")["id"]
    b = account_store.insert_organization(conn, "Globex")["id"]
    assert (a, b) == (1, 2)
    return types.SimpleNamespace(a=a, b=b)


@pytest.fixture
def make_token(conn, orgs):
    """Create an API token and return its secret; ``None`` organization: a platform token."""

    def factory(organization_id=1, expires_days=None, revoked=False, expired=False):
        secret, row = accounts.new_token(conn, organization_id, "test", expires_days)
        if revoked:
            conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = %s", (row["id"],))
        if expired:
            conn.execute(
                "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = %s",
                (row["id"],),
            )
        return secret

    return factory


@functools.cache
def test_password_hash() -> str:
    return accounts.hash_password(TEST_PASSWORD)


@pytest.fixture
def make_user(conn, orgs):
    """Create a person with a role in an organization; returns their email."""

    def factory(email, organization_id=1, role="operator", password=TEST_PASSWORD):
        # scrypt is slow on purpose: hash the usual password once per session.
        hashed = (
            test_password_hash() if password == TEST_PASSWORD else accounts.hash_password(password)
        )
        user = account_store.insert_user(conn, email, hashed)
        account_store.upsert_membership(conn, user["id"], organization_id, role)
        return email

    return factory


def sms_job(organization_id: int = 1, **options) -> dict:
    """A request body for the cheapest job a tenant may defer: a console SMS."""
    payload = {"organization_id": organization_id, "to": "+14155550123", "body": "hi"}
    return {"task": "sms:send_notification", "payload": payload, **options}


def bearer(client, secret):
    """Make every request of this test client carry the token."""
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


@pytest.fixture
def client(app, make_token):
    """A client calling with an operator token of organization 1 (Acme)."""
    return bearer(app.test_client(), make_token(1))


@pytest.fixture
def admin_client(app, make_token):
    """A client calling with a platform token."""
    return bearer(app.test_client(), make_token(None))


@pytest.fixture
def anon_client(app):
    """A client that sends no credentials."""
    return app.test_client()


class AuthActions:
    """Sign a browser-like test client in and out through the real form."""

    def __init__(self, client, base_url="http://localhost"):
        self.client = client
        self.base_url = base_url

    def csrf_token(self, path="/login"):
        page = self.client.get(path, base_url=self.base_url).get_data(as_text=True)
        return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)

    def login(self, email, password=TEST_PASSWORD, **extra):
        data = {"email": email, "password": password, "csrf_token": self.csrf_token(), **extra}
        # Browsers send Referer on same-origin posts; Flask-WTF checks it over HTTPS.
        return self.client.post(
            "/login",
            data=data,
            base_url=self.base_url,
            headers={"Referer": f"{self.base_url}/login"},
        )

    def logout(self):
        return self.client.post("/logout", data={"csrf_token": self.csrf_token("/")})


@pytest.fixture
def auth(app):
    """A browser-like client (cookies kept) with login/logout helpers: ``auth.client``."""
    return AuthActions(app.test_client())


@pytest.fixture
def runner(app):
    return app.test_cli_runner()
