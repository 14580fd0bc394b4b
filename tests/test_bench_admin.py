"""The admin pages' benchmark at a small scale: the seed's invariants, and the harness
timing the pages that exist."""

import flask
import psycopg
import pytest

from bench import bench_admin, seed_admin, seed_data
from webapp import migrations

JOBS = 5000


@pytest.fixture(scope="module")
def seeded(pg_server):
    """A new database with JOBS seeded jobs, for this module."""
    url = pg_server.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.migrate(conn)
    result = seed_admin.seed(url, JOBS, log=lambda _: None)
    yield url, result
    pg_server.drop_database(url)


@pytest.fixture
def seeded_conn(seeded):
    with psycopg.connect(seeded[0], autocommit=True) as conn:
        yield conn


def scalar(conn, query: str, *params):
    return conn.execute(query, params).fetchone()[0]


def test_the_seed_holds_the_jobs_asked_for_in_a_realistic_mix(seeded, seeded_conn):
    assert seeded[1]["jobs"] == JOBS
    by_status = dict(
        seeded_conn.execute(
            "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1"
        ).fetchall()
    )
    assert sum(by_status.values()) == JOBS
    assert by_status["todo"] == JOBS * 5 // 100
    assert by_status["doing"] == JOBS * 2 // 1000
    # Housekeeping runs (every 10 s over the last day) replace some finished tenant jobs.
    tenants = dict(
        seeded_conn.execute(
            "SELECT status::text, count(*) FROM procrastinate_jobs"
            " WHERE queue_name <> 'housekeeping' GROUP BY 1"
        ).fetchall()
    )
    finished = sum(tenants[s] for s in ("succeeded", "failed", "cancelled", "aborted"))
    for status, share in (("succeeded", 0.873), ("failed", 0.05), ("cancelled", 0.02)):
        assert tenants[status] == pytest.approx(finished * share / 0.948, rel=0.3), status
    assert 0 < by_status["aborted"] < JOBS * 0.02
    assert (
        scalar(
            seeded_conn,
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'"
            " AND scheduled_at > now()",
        )
        > 0
    )


def test_organizations_exist_and_a_few_tenants_hold_most_jobs(seeded_conn):
    assert scalar(seeded_conn, "SELECT count(*) FROM organizations") == seed_data.ORGANIZATIONS
    top = seeded_conn.execute(
        "SELECT count(*) FROM procrastinate_jobs WHERE args ? 'organization_id'"
        " GROUP BY args ->> 'organization_id' ORDER BY 1 DESC"
    ).fetchall()
    tenant_jobs = sum(n for (n,) in top)
    assert sum(n for (n,) in top[:3]) > tenant_jobs * 0.4
    orphans = scalar(
        seeded_conn,
        "SELECT count(*) FROM procrastinate_jobs j WHERE args ? 'organization_id' AND NOT EXISTS"
        " (SELECT 1 FROM organizations o WHERE o.id = (j.args ->> 'organization_id')::bigint)",
    )
    assert orphans == 0
    assert scalar(seeded_conn, "SELECT count(DISTINCT task_name) FROM procrastinate_jobs") >= 15


def test_every_finished_job_has_its_events_and_attempts(seeded_conn):
    missing_events = scalar(
        seeded_conn,
        "SELECT count(*) FROM procrastinate_jobs j WHERE status IN ('succeeded', 'failed',"
        " 'aborted') AND NOT (EXISTS (SELECT 1 FROM procrastinate_events e WHERE e.job_id = j.id"
        " AND e.type = 'deferred') AND EXISTS (SELECT 1 FROM procrastinate_events e"
        " WHERE e.job_id = j.id AND e.type = 'started') AND EXISTS (SELECT 1 FROM"
        " procrastinate_events e WHERE e.job_id = j.id AND e.type::text = j.status::text))",
    )
    assert missing_events == 0
    # One attempt row per run that ended, numbered 1..attempts, the last one's outcome the
    # job's (a lost run ends as failed or is retried).
    wrong_attempts = scalar(
        seeded_conn,
        "SELECT count(*) FROM procrastinate_jobs j WHERE status IN ('succeeded', 'failed',"
        " 'aborted') AND (SELECT count(*) <> j.attempts OR max(a.attempt) <> j.attempts"
        " FROM job_attempts a WHERE a.job_id = j.id)",
    )
    assert wrong_attempts == 0
    last_outcomes = dict(
        seeded_conn.execute(
            "SELECT j.status::text || '/' || a.outcome, count(*) FROM procrastinate_jobs j"
            " JOIN job_attempts a ON a.job_id = j.id AND a.attempt = j.attempts"
            " WHERE j.status IN ('succeeded', 'failed', 'aborted') GROUP BY 1"
        ).fetchall()
    )
    assert set(last_outcomes) <= {
        "succeeded/succeeded",
        "failed/failed",
        "failed/lost",
        "aborted/aborted",
    }
    failures = scalar(
        seeded_conn,
        "SELECT count(*) FROM job_attempts WHERE outcome = 'failed'"
        " AND (error_class IS NULL OR error_message IS NULL OR traceback IS NULL)",
    )
    assert failures == 0
    cancelled_ran = scalar(
        seeded_conn,
        "SELECT count(*) FROM procrastinate_jobs j JOIN job_attempts a ON a.job_id = j.id"
        " WHERE j.status = 'cancelled'",
    )
    assert cancelled_ran == 0


def test_events_follow_the_ids_in_time(seeded_conn):
    """Later jobs were deferred later, and no event lies in the future but a schedule."""
    out_of_order = scalar(
        seeded_conn,
        "SELECT count(*) FROM (SELECT at < lag(at) OVER (ORDER BY job_id) AS earlier"
        " FROM procrastinate_events WHERE type = 'deferred') d WHERE earlier",
    )
    assert out_of_order == 0
    future = scalar(
        seeded_conn,
        "SELECT count(*) FROM procrastinate_events WHERE at > now() AND type <> 'scheduled'",
    )
    assert future == 0
    oldest = scalar(seeded_conn, "SELECT now() - min(at) FROM procrastinate_events")
    assert 6 <= oldest.days <= 7


def test_running_jobs_belong_to_workers_in_the_registry(seeded_conn):
    orphans = scalar(
        seeded_conn,
        "SELECT count(*) FROM procrastinate_jobs j WHERE status = 'doing' AND NOT EXISTS"
        " (SELECT 1 FROM procrastinate_workers w JOIN worker_registry r ON r.worker_id = w.id"
        " WHERE w.id = j.worker_id AND (r.queues IS NULL OR j.queue_name = ANY (r.queues)))",
    )
    assert orphans == 0
    assert scalar(seeded_conn, "SELECT count(*) FROM procrastinate_workers") >= 3


def test_seeding_again_is_skipped_and_a_used_database_refused(seeded):
    url, _ = seeded
    assert seed_admin.seed(url, JOBS, log=lambda _: None)["skipped"] is True
    with pytest.raises(SystemExit, match="no matching seed mark"):
        seed_admin.seed(url, JOBS + 1, log=lambda _: None)


def test_the_harness_times_the_pages_that_exist(seeded):
    url, _ = seeded
    result = bench_admin.measure(url, warmups=1, requests=2, log=lambda _: None)
    overview = result["pages"]["overview"]
    assert overview["missing"] is False
    for role in ("admin", "operator"):
        measured = overview["roles"][role]
        assert measured["status"] == 200
        assert 0 < measured["p50_ms"] <= measured["p95_ms"]
        assert measured["statements"] > 0 and measured["plans"]
        assert all("error" not in plan for plan in measured["plans"])
    for page in result["pages"].values():
        if not page["missing"]:
            assert all(r["status"] in (200, "no page") for r in page["roles"].values()), page
    section = bench_admin.report(
        {**result, "jobs": JOBS, "date": "today", "seed": {}, "requests": 2}, machine="test"
    )
    assert "| overview |" in section
    assert "## overview, as admin" in bench_admin.plans_report(
        {**result, "jobs": JOBS, "date": "today"}
    )


def test_following_older_links_reaches_a_deep_page():
    """The cursor walk takes the link with the lowest before= id, page after page."""
    app = flask.Flask(__name__)

    @app.get("/list")
    def listing():
        before = int(flask.request.args.get("before", 1000))
        newer = f'<a href="/list?q=x&amp;before={before + 10}">Newer</a>'
        older = f'<a class="pager" href="/list?q=x&amp;before={before - 10}">Older</a>'
        return newer + (older if before > 10 else "")

    url, reached = bench_admin.follow_older(app.test_client(), "/list?q=x", 100)
    assert (url, reached) == ("/list?q=x&before=10", 100)
    assert bench_admin.follow_older(app.test_client(), "/list", 200) == ("/list?q=x&before=10", 100)
    unnamed = '<a href="/j?before=50">2</a><a href="/j?before=70">1</a><a href="/j?before=90">0</a>'
    assert bench_admin.older_link(unnamed, 80) == "/j?before=50"
    assert bench_admin.older_link(unnamed, 40) is None
