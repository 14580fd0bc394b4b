"""The metrics benchmark at a small scale: its seed and rollups add up, and it times the
scrape and explains each statement the scrape runs."""

import psycopg
import pytest

from bench import bench_metrics
from webapp import migrations

JOBS = 2000


@pytest.fixture
def seeded(pg_server):
    url = pg_server.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.migrate(conn)
    bench_metrics.seed(url, JOBS, log=lambda _: None)
    yield url
    pg_server.drop_database(url)


def test_the_bench_seeds_what_the_scrape_then_reports(seeded):
    result = bench_metrics.measure(seeded, warmups=1, requests=3)
    assert set(result) >= {"metrics", "readyz", "job_list", "plans", "seq_scans"}
    assert result["metrics"]["p50_ms"] > 0
    explained = [plan for plan in result["plans"] if "error" not in plan]
    assert len(explained) == len(result["plans"]) >= 7
    with psycopg.connect(seeded, autocommit=True) as conn:
        attempts = conn.execute("SELECT sum(attempts) FROM attempt_counts").fetchone()[0]
        messages = conn.execute("SELECT sum(messages) FROM sms_status_counts").fetchone()[0]
    assert attempts == bench_metrics.ATTEMPT_BATCHES * 1000
    assert messages == JOBS * bench_metrics.SMS_SHARE
    section = bench_metrics.report({"jobs": JOBS, "warmups": 1, "requests": 3, **result})
    assert "## GET /metrics at 2,000 jobs" in section
