"""Health and status endpoints against a real PostgreSQL."""

import datetime

import procrastinate
import psycopg
import pytest

from tasks.app import app as procrastinate_app
from tasks.diagnostics import noop
from tests.conftest import bearer
from webapp import accounts, migrations

ORG = {"organization_id": 1}


@pytest.fixture
def defer(db_url):
    """Defer jobs through Procrastinate itself, on a connector of this test's own."""
    connector = procrastinate.SyncPsycopgConnector(conninfo=db_url, min_size=1, max_size=2)
    with procrastinate_app.replace_connector(connector) as app:
        app.open()
        try:
            yield lambda **options: noop.configure(**options).defer(**ORG)
        finally:
            app.close()


def test_liveness_is_always_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_ready_when_migrated(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready"}


def test_not_ready_while_migrations_are_pending(make_app, empty_db_url):
    response = make_app(empty_db_url).test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert "migration(s) pending" in body["reason"]


def test_status_reports_database_versions_and_no_workers(admin_client):
    body = admin_client.get("/api/admin/status").get_json()
    assert body["database"]["reachable"] is True
    assert body["database"]["pending_migrations"] == []
    assert body["database"]["server_version"][0].isdigit()
    assert body["workers"] == []
    assert set(body["versions"]) == {"howdah", "procrastinate", "postgresql"}
    assert body["versions"]["procrastinate"].startswith("3.")


def test_status_lists_pending_migrations(make_app, empty_db_url):
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        migrations.migrate(conn)
        last = migrations.Sources().project()[-1].name
        conn.execute("DELETE FROM schema_migrations WHERE name = %s", (last,))
        secret, _ = accounts.new_token(conn, None, "admin", None)
    client = bearer(make_app(empty_db_url).test_client(), secret)
    body = client.get("/api/admin/status").get_json()
    assert body["database"]["pending_migrations"] == [f"howdah/{last}"]
    assert client.get("/readyz").status_code == 503


def test_status_shows_worker_heartbeats_and_staleness(admin_client, conn):
    fresh = conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()[0]
    silent = conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()[0]
    conn.execute(
        "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '2 minutes'"
        " WHERE id = %s",
        (silent,),
    )
    workers = {w["id"]: w for w in admin_client.get("/api/admin/status").get_json()["workers"]}
    assert workers[fresh]["stale"] is False
    assert workers[fresh]["heartbeat_age_seconds"] < 5
    assert workers[silent]["stale"] is True
    assert 110 < workers[silent]["heartbeat_age_seconds"] < 200
    datetime.datetime.fromisoformat(workers[fresh]["last_heartbeat"])


def test_queue_health_lists_every_known_queue_when_empty(admin_client):
    response = admin_client.get("/api/admin/queues/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["healthy"] is True and body["max_wait_seconds"] == 300
    assert [q["name"] for q in body["queues"]] == ["default", "email-digests", "sms-notifications"]
    assert all(q["oldest_waiting_seconds"] is None for q in body["queues"])
    assert all(set(q["counts"].values()) == {0} for q in body["queues"])


def test_queue_health_counts_jobs_by_status(admin_client, defer, conn):
    defer()
    defer()
    done = defer(queue="reports")
    conn.execute("UPDATE procrastinate_jobs SET status = 'succeeded' WHERE id = %s", (done,))
    defer(queue="reports", schedule_in={"hours": 1})

    response = admin_client.get("/api/admin/queues/health")
    assert response.status_code == 200
    queues = {q["name"]: q for q in response.get_json()["queues"]}
    assert queues["default"]["counts"]["todo"] == 2
    assert queues["default"]["oldest_waiting_seconds"] < 5
    assert queues["reports"]["counts"]["succeeded"] == 1
    # A job scheduled for later is counted but is not waiting yet.
    assert queues["reports"]["counts"]["todo"] == 1
    assert queues["reports"]["oldest_waiting_seconds"] is None
    assert all(q["healthy"] for q in queues.values())


def test_queue_with_an_old_waiting_job_is_unhealthy(admin_client, defer, conn):
    old = defer()
    defer(queue="fresh")
    conn.execute(
        "UPDATE procrastinate_events SET at = now() - interval '10 minutes' WHERE job_id = %s",
        (old,),
    )
    response = admin_client.get("/api/admin/queues/health")
    assert response.status_code == 503
    body = response.get_json()
    queues = {q["name"]: q for q in body["queues"]}
    assert body["healthy"] is False
    assert queues["default"]["healthy"] is False
    assert 590 < queues["default"]["oldest_waiting_seconds"] < 700
    assert queues["fresh"]["healthy"] is True


def test_overdue_scheduled_job_waits_from_its_schedule(admin_client, defer, conn):
    job = defer(schedule_in={"seconds": 1})
    conn.execute(
        "UPDATE procrastinate_jobs SET scheduled_at = now() - interval '30 seconds' WHERE id = %s",
        (job,),
    )
    conn.execute(
        "UPDATE procrastinate_events SET at = now() - interval '1 hour' WHERE job_id = %s", (job,)
    )
    queues = {
        q["name"]: q for q in admin_client.get("/api/admin/queues/health").get_json()["queues"]
    }
    assert 25 < queues["default"]["oldest_waiting_seconds"] < 60


def test_queue_health_threshold_is_configurable(make_app, db_url, defer, conn, make_token):
    job = defer()
    conn.execute(
        "UPDATE procrastinate_events SET at = now() - interval '20 seconds' WHERE job_id = %s",
        (job,),
    )
    strict = bearer(make_app(db_url, QUEUE_MAX_WAIT_SECONDS="10").test_client(), make_token(None))
    assert strict.get("/api/admin/queues/health").status_code == 503


def test_admin_endpoints_before_migrations_are_a_clear_503(make_app, empty_db_url):
    client = bearer(make_app(empty_db_url).test_client(), "hwd_0000_no-schema-yet")
    response = client.get("/api/admin/queues/health")
    assert response.status_code == 503
    assert response.get_json() == {
        "error": "Service Unavailable",
        "message": "The database schema is not installed; run `flask --app webapp migrate`.",
    }
