"""GET /metrics: what it reports matches the database, counters never go down, and only
operators' scrapers may read it."""

import asyncio
import datetime

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from webapp.store import attempts as attempts_store
from webapp.store import loaders
from webapp.store import maintenance as maintenance_store

TOKEN = "m" * 24
NOW = datetime.datetime.now(datetime.UTC)


def scrape(client, **kwargs) -> dict:
    """GET /metrics; every sample as {(name, sorted labels): value}."""
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.data
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def run(db_url, statement, *args):
    """Run one of the worker's async store statements, as the worker does."""

    async def go():
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            loaders.register(conn)
            return await statement(conn, *args)

    return asyncio.run(go())


def attempt(job_id, outcome="succeeded", seconds=0.2, task="diagnostics:noop", worker="w1"):
    """An attempt row in the worker's column order (webapp.store.attempts.COLUMNS)."""
    started = NOW - datetime.timedelta(seconds=seconds)
    error, message = (None, None) if outcome == "succeeded" else ("RuntimeError", "boom")
    return (
        job_id,
        1,
        worker,
        outcome,
        started,
        NOW,
        error,
        message,
        None,
        None,
        None,
        task,
        "default",
        1,
    )


def add_job(conn, queue="default", status="todo", scheduled_at=None, org=1) -> int:
    return conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, scheduled_at)"
        " VALUES (%s, 'diagnostics:noop', %s, %s, %s) RETURNING id",
        (queue, f'{{"organization_id": {org}}}', status, scheduled_at),
    ).fetchone()[0]


def add_sms(conn, job_id, status) -> None:
    conn.execute(
        "INSERT INTO sms_messages (organization_id, job_id, provider, to_number, segments, status)"
        " VALUES (1, %s, 'console', '+14155550123', 1, %s)",
        (job_id, status),
    )


@pytest.fixture
def metrics_client(make_app, db_url):
    """A client from 127.0.0.1, which METRICS_ALLOW_FROM lets in."""
    return make_app(db_url, METRICS_ALLOW_FROM="127.0.0.1/32").test_client()


def test_jobs_by_queue_and_state_and_the_oldest_waiting_age(conn, orgs, metrics_client):
    for _ in range(3):
        add_job(conn, "default")
    add_job(conn, "default", scheduled_at=NOW + datetime.timedelta(hours=1))
    add_job(conn, "sms-notifications", "doing", org=2)
    add_job(conn, "custom-queue")
    for status in ("succeeded", "succeeded", "failed"):
        add_job(conn, "email-digests", status)
    conn.execute(
        "UPDATE procrastinate_events SET at = now() - interval '90 seconds'"
        " WHERE job_id = (SELECT min(id) FROM procrastinate_jobs)"
    )
    run(conn.info.dsn, maintenance_store.count_finished_jobs)

    samples = scrape(metrics_client)

    def jobs(queue, state):
        return samples["howdah_jobs", (("queue", queue), ("state", state))]

    assert jobs("default", "todo") == 4
    assert jobs("sms-notifications", "doing") == 1
    assert jobs("(other)", "todo") == 1
    assert jobs("email-digests", "succeeded") == 2
    assert jobs("email-digests", "failed") == 1
    assert jobs("housekeeping", "cancelled") == 0
    assert not any("organization" in str(key) or "custom-queue" in str(key) for key in samples)
    age = samples["howdah_queue_oldest_waiting_job_age_seconds", (("queue", "default"),)]
    assert 89 <= age < 120
    assert (
        samples["howdah_queue_oldest_waiting_job_age_seconds", (("queue", "sms-notifications"),)]
        == 0
    )


def test_attempts_and_their_durations_by_task(conn, orgs, db_url, metrics_client):
    rows = [
        attempt(1, seconds=0.003),
        attempt(2, seconds=0.2),
        attempt(3, "failed", seconds=4),
        attempt(4, "failed", seconds=4000, task="no-such-task"),
    ]
    run(db_url, attempts_store.insert_attempts, rows)
    run(db_url, attempts_store.insert_attempts, rows[:2])  # a repeat is not counted again

    samples = scrape(metrics_client)

    def counted(name, **labels):
        return samples[name, tuple(sorted(labels.items()))]

    noop = "diagnostics:noop"
    assert counted("howdah_job_attempts_total", task=noop, outcome="succeeded") == 2
    assert counted("howdah_job_attempts_total", task=noop, outcome="failed") == 1
    assert counted("howdah_job_attempts_total", task="(other)", outcome="failed") == 1
    histogram = "howdah_job_attempt_duration_seconds"
    assert counted(f"{histogram}_bucket", task=noop, le="0.005") == 1
    assert counted(f"{histogram}_bucket", task=noop, le="0.25") == 2
    assert counted(f"{histogram}_bucket", task=noop, le="2.5") == 2
    assert counted(f"{histogram}_bucket", task=noop, le="5.0") == 3
    assert counted(f"{histogram}_bucket", task=noop, le="+Inf") == 3
    assert counted(f"{histogram}_count", task=noop) == 3
    assert counted(f"{histogram}_sum", task=noop) == pytest.approx(4.203, abs=1e-6)
    assert counted(f"{histogram}_bucket", task="(other)", le="600.0") == 0
    assert counted(f"{histogram}_bucket", task="(other)", le="+Inf") == 1


def test_counters_never_go_down_when_retention_deletes_attempts(conn, orgs, db_url, metrics_client):
    old = NOW - datetime.timedelta(days=30)
    ids = [add_job(conn, status="succeeded") for _ in range(3)]
    for job_id in ids:
        conn.execute(
            "INSERT INTO procrastinate_events (job_id, type, at) VALUES (%s, 'deferred', %s)",
            (job_id, old),
        )
    run(db_url, attempts_store.insert_attempts, [attempt(i) for i in ids])
    # Those hours are long gone: housekeeping may fold them.
    conn.execute("UPDATE attempt_counts SET hour = hour - interval '3 hours'")
    before = scrape(metrics_client)
    key = ("howdah_job_attempts_total", (("outcome", "succeeded"), ("task", "diagnostics:noop")))
    assert before[key] == 3

    assert run(db_url, maintenance_store.delete_finished_jobs, NOW, 100) == 3
    assert run(db_url, maintenance_store.fold_attempt_counts) == 1
    assert conn.execute("SELECT count(*) FROM job_attempts").fetchone()[0] == 0
    totals = "SELECT count(*) FROM attempt_counts WHERE hour = '-infinity'"
    assert conn.execute(totals).fetchone()[0] == 1
    after = scrape(metrics_client)
    assert after[key] == 3
    count = ("howdah_job_attempt_duration_seconds_count", (("task", "diagnostics:noop"),))
    assert after[count] == before[count] == 3

    run(db_url, attempts_store.insert_attempts, [attempt(9)])
    assert scrape(metrics_client)[key] == 4
    assert run(db_url, maintenance_store.fold_attempt_counts) == 0  # this hour stays


def test_a_lost_run_whose_outcome_arrives_later_counts_once(conn, orgs, db_url, metrics_client):
    job_id = add_job(conn, status="doing")
    conn.execute(
        "INSERT INTO job_attempts (job_id, attempt, worker_name, outcome, started_at,"
        " finished_at, task_name) VALUES (%s, 1, 'w1', 'lost', now(), now(), 'diagnostics:noop')",
        (job_id,),
    )
    run(db_url, attempts_store.insert_attempts, [attempt(job_id)])
    samples = scrape(metrics_client)
    assert (
        samples["howdah_job_attempt_duration_seconds_count", (("task", "diagnostics:noop"),)] == 1
    )


def test_workers_alive_and_sms_by_status(conn, orgs, metrics_client):
    fresh = [conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()[0] for _ in "ab"]
    stale = conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()[0]
    conn.execute(
        "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour' WHERE id = %s",
        (stale,),
    )
    for job_id, status in enumerate(["delivered", "delivered", "failed", "pending"]):
        add_sms(conn, job_id, status)
    conn.execute("UPDATE sms_messages SET status = 'sent' WHERE status = 'pending'")
    conn.execute("DELETE FROM sms_messages WHERE status = 'failed'")
    conn.execute("UPDATE sms_messages SET segments = 2")  # no status change

    samples = scrape(metrics_client)

    assert len(fresh) == 2
    assert samples["howdah_workers_alive", ()] == 2
    assert samples["howdah_sms_messages", (("status", "delivered"),)] == 2
    assert samples["howdah_sms_messages", (("status", "sent"),)] == 1
    assert samples["howdah_sms_messages", (("status", "pending"),)] == 0
    assert samples["howdah_sms_messages", (("status", "failed"),)] == 0


@pytest.mark.parametrize(
    ("settings", "address", "authorization", "status"),
    [
        ({}, "127.0.0.1", None, 404),
        ({"HOWDAH_ENV": "development"}, "127.0.0.1", None, 200),
        ({"HOWDAH_ENV": "development"}, "::1", None, 200),
        ({"HOWDAH_ENV": "development"}, "10.0.0.5", None, 404),
        ({"METRICS_ALLOW_FROM": "127.0.0.1/32,::1/128"}, "::1", None, 200),
        ({"METRICS_ALLOW_FROM": "10.0.0.0/8"}, "10.0.0.5", None, 200),
        ({"METRICS_ALLOW_FROM": "10.0.0.0/8"}, "127.0.0.1", None, 404),
        ({"METRICS_ALLOW_FROM": "none"}, "127.0.0.1", None, 404),
        ({"METRICS_TOKEN": TOKEN}, "10.0.0.5", f"Bearer {TOKEN}", 200),
        ({"METRICS_TOKEN": TOKEN}, "10.0.0.5", f"bearer {TOKEN}", 200),
        ({"METRICS_TOKEN": TOKEN}, "10.0.0.5", None, 401),
        ({"METRICS_TOKEN": TOKEN}, "10.0.0.5", "Bearer " + "x" * 24, 401),
        ({"METRICS_TOKEN": TOKEN}, "10.0.0.5", f"Basic {TOKEN}", 401),
        ({"METRICS_TOKEN": TOKEN}, "127.0.0.1", "Bearer wrong-token-é", 401),
        ({"METRICS_TOKEN": TOKEN}, "127.0.0.1", None, 401),
        ({"METRICS_TOKEN": TOKEN, "METRICS_ALLOW_FROM": "127.0.0.1/32"}, "127.0.0.1", None, 200),
        ({}, "127.0.0.1", f"Bearer {TOKEN}", 401),
    ],
)
def test_who_may_read_the_metrics(make_app, db_url, settings, address, authorization, status):
    client = make_app(db_url, **settings).test_client()
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": address})
    assert response.status_code == status
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.get_data(as_text=True) == "Unauthorized\n"
    if status != 200:
        assert b"howdah_" not in response.data


def test_database_down_is_a_short_503(make_app, pg_server):
    app = make_app(
        pg_server.url("howdah_no_such_database"),
        DB_POOL_TIMEOUT="0.5",
        METRICS_ALLOW_FROM="127.0.0.1/32",
    )
    response = app.test_client().get("/metrics")
    assert response.status_code == 503
    assert response.content_type.startswith("text/plain")
    assert response.get_data(as_text=True) == "database unavailable\n"


def test_a_database_the_release_has_not_migrated_is_a_short_503(make_app, empty_db_url):
    app = make_app(empty_db_url, METRICS_ALLOW_FROM="127.0.0.1/32")
    response = app.test_client().get("/metrics")
    assert response.status_code == 503
    assert response.content_type.startswith("text/plain")
    assert response.get_data(as_text=True) == "database schema not current\n"
