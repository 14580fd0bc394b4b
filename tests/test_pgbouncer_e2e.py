"""Through PgBouncer in transaction mode: the web process on DATABASE_URL through it, the
worker and the migrations on DIRECT_DATABASE_URL, straight to PostgreSQL."""

import logging
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import psycopg
import pytest
import requests

from tests import pgbouncer, processes
from tests.conftest import TEST_PASSWORD, TEST_SECRET
from tests.test_migrations import assert_applied_once_each, migrate_at_once
from webapp import db
from webapp.store import database as database_store

pytestmark = pytest.mark.e2e

# What pgbouncer.ini's connect_query sets on every server connection: the web settings'
# defaults (DB_STATEMENT_TIMEOUT_MS, DB_LOCK_TIMEOUT_MS).
TIMEOUTS = "SET statement_timeout = 30000; SET lock_timeout = 5000"
NOOP = {"task": "diagnostics:noop", "payload": {"organization_id": 1}}
LATER = {**NOOP, "delay_seconds": 3600}
SINGLE_DEFERS = 40
BATCHES = 5
BATCH_SIZE = 20


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def pooled_settings(bouncer: pgbouncer.PgBouncer, direct_url: str) -> dict:
    """DATABASE_URL through PgBouncer, DIRECT_DATABASE_URL straight to PostgreSQL."""
    return {
        "DATABASE_URL": bouncer.url(database_name(direct_url)),
        "DIRECT_DATABASE_URL": direct_url,
        "DATABASE_TRANSACTION_POOLING": "true",
    }


@pytest.fixture
def bouncer(pg_server, tmp_path):
    """PgBouncer in transaction mode with two server connections per database, setting
    the web process's timeouts on each."""
    with pgbouncer.run(pg_server.admin_url, tmp_path / "pgbouncer.log", TIMEOUTS) as running:
        yield running


def test_direct_settings_are_refused_by_pgbouncer_and_pooled_ones_are_not(bouncer, db_url):
    settings = {**pooled_settings(bouncer, db_url), "DB_CONNECT_TIMEOUT": 5}
    settings |= {"DB_STATEMENT_TIMEOUT_MS": 30000, "DB_LOCK_TIMEOUT_MS": 5000}
    direct = db.connect_kwargs({**settings, "DATABASE_TRANSACTION_POOLING": False}, "howdah-web")
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter: options"):
        psycopg.connect(settings["DATABASE_URL"], **direct).close()
    pooled = db.connect_kwargs({**settings, "DATABASE_TRANSACTION_POOLING": True}, "howdah-web")
    with psycopg.connect(settings["DATABASE_URL"], autocommit=True, **pooled) as conn:
        assert database_store.get_timeouts(conn) == (30000, 5000)


def test_a_pooled_app_prepares_nothing_and_warns_without_the_timeouts(
    pg_server, db_url, make_app, tmp_path, caplog
):
    with pgbouncer.run(pg_server.admin_url, tmp_path / "bare.log") as bare:
        app = make_app(db_url, **pooled_settings(bare, db_url), WEB_POOL_MIN_SIZE="3")
        pool = db.get_db(app).pool
        with caplog.at_level(logging.WARNING, logger="webapp.db"):
            pool.wait(timeout=10)
            # Each connection runs one statement ten times, past psycopg's threshold for
            # preparing it (5), on transactions PgBouncer spreads over two server
            # connections: a prepared statement would be missing or taken on the next.
            connections = [pool.getconn(timeout=5) for _ in range(3)]
            for _ in range(10):
                for conn in connections:
                    assert database_store.get_timeouts(conn) == (0, 0)
            for conn in connections:
                pool.putconn(conn)
    warnings = [r.getMessage() for r in caplog.records if r.name == "webapp.db"]
    assert len(warnings) == 1  # once per process, not per connection
    assert "statement_timeout is 0 ms and lock_timeout 0 ms" in warnings[0]
    assert "DB_STATEMENT_TIMEOUT_MS=30000" in warnings[0]


def test_migrations_take_the_direct_url(bouncer, empty_db_url):
    env = processes.process_env(**pooled_settings(bouncer, empty_db_url))
    for said in ("Applied", "Nothing to migrate."):
        result = subprocess.run(
            [str(processes.BIN / "flask"), "--app", "webapp", "migrate"],
            env=env,
            cwd=processes.ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert said in result.stderr
    # PgBouncer never had a client for this database: the release step took the direct URL.
    assert database_name(empty_db_url) not in {row["name"] for row in bouncer.show("DATABASES")}
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] > 0


def advisory_locks(url: str) -> int:
    """Advisory locks held in this URL's database, by any session."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()[0]


def test_concurrent_migrations_through_pgbouncer_alone(pg_server, empty_db_url, tmp_path):
    """The release step with DATABASE_URL through PgBouncer in transaction mode and no
    DIRECT_DATABASE_URL: three runs at once on a new database share one server connection."""
    name = database_name(empty_db_url)
    log = tmp_path / "pgbouncer.log"
    with pgbouncer.run(pg_server.admin_url, log, pool_size=1) as bare:
        env = processes.process_env(DATABASE_URL=bare.url(name))
        outputs = migrate_at_once(env, 3)
        (stats,) = [row for row in bare.show("STATS") if row["database"] == name]
        servers = [row for row in bare.show("SERVERS") if row["database"] == name]
        # Checked while PgBouncer keeps its server connection: nothing holds the lock.
        assert advisory_locks(empty_db_url) == 0
    assert stats["total_xact_count"] > 0 and len(servers) == 1  # they went through it
    assert_applied_once_each(empty_db_url, outputs)
    assert "Traceback" not in "".join(outputs)


@pytest.fixture
def service(bouncer, db_url, tmp_path):
    """gunicorn (2 processes of 4 connections) through PgBouncer, and a worker whose
    DATABASE_URL goes through PgBouncer too but who must use DIRECT_DATABASE_URL."""
    settings = pooled_settings(bouncer, db_url)
    port = processes.free_port()
    web_env = processes.process_env(
        SECRET_KEY=TEST_SECRET,
        PORT=str(port),
        WEB_CONCURRENCY="2",
        WEB_POOL_MIN_SIZE="4",
        **settings,
    )
    web = processes.start_web(web_env, tmp_path / "web.log")
    worker = processes.start_worker(
        processes.process_env(**settings), tmp_path / "worker.log", "--concurrency", "4"
    )
    base = f"http://127.0.0.1:{port}"
    processes.wait_for(f"{base}/readyz")  # its checks read through PgBouncer
    yield base
    for process in (web, worker):
        assert processes.stop(process, timeout=35) == 0


def api_session(secret: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {secret}"
    return session


def sign_in(base: str, email: str) -> tuple[requests.Session, str]:
    """A browser-like session signed in through the form; and a CSRF token for its posts."""
    session = requests.Session()
    token = csrf_token(session, f"{base}/login")
    form = {"email": email, "password": TEST_PASSWORD, "csrf_token": token}
    assert session.post(f"{base}/login", data=form, allow_redirects=False).status_code == 302
    return session, csrf_token(session, f"{base}/admin/queues/jobs")


def csrf_token(session: requests.Session, url: str) -> str:
    page = session.get(url, timeout=10)
    assert page.status_code == 200, url
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)


def defer_many(api: requests.Session, base: str) -> list[int]:
    """Single and batch defers, with reads between them, from 8 clients at once."""

    def one(index: int) -> list[int]:
        if index < BATCHES:
            answer = api.post(f"{base}/api/v1/jobs/batch", json={"jobs": [NOOP] * BATCH_SIZE})
            assert answer.status_code == 202, answer.text
            return [job["id"] for job in answer.json()["jobs"]]
        answer = api.post(f"{base}/api/v1/jobs", json=NOOP)
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        assert api.get(f"{base}/api/v1/jobs/{job_id}").status_code == 200
        assert api.get(f"{base}/api/v1/jobs", params={"limit": 5}).status_code == 200
        return [job_id]

    with ThreadPoolExecutor(8) as clients:
        return [i for ids in clients.map(one, range(BATCHES + SINGLE_DEFERS)) for i in ids]


def wait_until_settled(conn: psycopg.Connection, ids: list[int], timeout: float = 60.0) -> dict:
    """How many of these jobs end in each status, once none waits to run or runs."""
    deadline = time.monotonic() + timeout
    while True:
        counts = dict(
            conn.execute(
                "SELECT status, count(*) FROM procrastinate_jobs WHERE id = ANY(%s)"
                " GROUP BY status",
                (ids,),
            ).fetchall()
        )
        if not counts.keys() & {"todo", "doing"}:
            return counts
        assert time.monotonic() < deadline, f"jobs still waiting: {counts}"
        time.sleep(0.2)


def test_jobs_go_through_pgbouncer_in_transaction_mode(
    service, bouncer, conn, make_token, make_user, tmp_path
):
    base = service
    api = api_session(make_token(None))
    deferred = defer_many(api, base)
    assert len(set(deferred)) == SINGLE_DEFERS + BATCHES * BATCH_SIZE

    # Steering: cancel a waiting job through the API, then retry it (a new job that runs);
    # cancel another through the admin pages, signed in through the form.
    waiting = [api.post(f"{base}/api/v1/jobs", json=LATER).json()["id"] for _ in range(2)]
    cancelled = api.post(f"{base}/api/v1/jobs/{waiting[0]}/cancel")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    retried = api.post(f"{base}/api/v1/jobs/{waiting[0]}/retry")
    assert retried.status_code == 202, retried.text
    person, token = sign_in(base, make_user("admin@example.com", role="admin"))
    assert f"/admin/queues/jobs/{waiting[1]}" in person.get(f"{base}/admin/queues/jobs").text
    assert person.get(f"{base}/admin/queues/jobs/{deferred[0]}").status_code == 200
    answer = person.post(
        f"{base}/admin/queues/jobs/{waiting[1]}/cancel",
        data={"csrf_token": token},
        allow_redirects=False,
    )
    assert answer.status_code == 302

    ran = [*deferred, retried.json()["id"]]
    assert wait_until_settled(conn, ran) == {"succeeded": len(ran)}
    assert wait_until_settled(conn, waiting) == {"cancelled": 2}

    clients = [c for c in bouncer.show("CLIENTS") if c["database"] == conn.info.dbname]
    servers = [s for s in bouncer.show("SERVERS") if s["database"] == conn.info.dbname]
    names = {c["application_name"] for c in clients}
    # Eight web connections took turns on two server connections; the worker never came.
    assert len(clients) > pgbouncer.POOL_SIZE and names == {"howdah-web"}
    assert 0 < len(servers) <= pgbouncer.POOL_SIZE
    web_log = (tmp_path / "web.log").read_text()
    for trouble in ("Traceback", "prepared statement", "transaction pooler"):
        assert trouble not in web_log
    assert "Traceback" not in (tmp_path / "worker.log").read_text()
