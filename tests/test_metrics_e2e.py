"""GET /metrics through real gunicorn processes behind a proxy, after a real worker ran
real jobs: every process reports the same counts, and the client address the allow-list
judges is the one TRUSTED_PROXIES lets through."""

import time

import procrastinate
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tasks.app import app as procrastinate_app
from tasks.diagnostics import fail_then_succeed, noop
from tests import processes
from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.e2e

TOKEN = "e2e-metrics-token-0123456789"
PROXY_CLIENT = "203.0.113.7"


@pytest.fixture
def service(db_url, tmp_path):
    """gunicorn (2 processes, one proxy trusted) and one worker process."""
    port = processes.free_port()
    env = processes.process_env(
        DATABASE_URL=db_url,
        SECRET_KEY=TEST_SECRET,
        PORT=str(port),
        WEB_CONCURRENCY="2",
        TRUSTED_PROXIES="1",
        METRICS_TOKEN=TOKEN,
        METRICS_ALLOW_FROM=f"{PROXY_CLIENT}/32",
    )
    web = processes.start_web(env, tmp_path / "web.log")
    worker = processes.start_worker(env, tmp_path / "worker.log", "--concurrency", "4")
    base = f"http://127.0.0.1:{port}"
    processes.wait_for(f"{base}/healthz")
    yield base
    for process in (web, worker):
        processes.stop(process)


def attempts(text: str) -> dict:
    """The attempt counters and histogram counts of a scrape."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith(("howdah_job_attempt", "howdah_workers"))
    }


def test_real_jobs_are_counted_alike_by_every_web_process(service, conn, orgs):
    with procrastinate_app.replace_connector(
        procrastinate.SyncPsycopgConnector(conninfo=conn.info.dsn)
    ) as app:
        app.open()
        for _ in range(5):
            noop.defer(organization_id=1)
        fail_then_succeed.defer(organization_id=2, failures=1)
        app.close()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    noop_ok = (
        "howdah_job_attempts_total",
        (("outcome", "succeeded"), ("task", "diagnostics:noop")),
    )
    flaky = "diagnostics:fail_then_succeed"
    deadline = time.monotonic() + 30
    while True:
        samples = attempts(requests.get(f"{service}/metrics", headers=headers, timeout=5).text)
        done = samples.get(
            ("howdah_job_attempts_total", (("outcome", "succeeded"), ("task", flaky)))
        )
        if samples.get(noop_ok) == 5 and done == 1 and samples[("howdah_workers_alive", ())] == 1:
            break
        assert time.monotonic() < deadline, samples
        time.sleep(0.2)

    assert samples[("howdah_job_attempts_total", (("outcome", "failed"), ("task", flaky)))] == 1
    assert samples[("howdah_job_attempt_duration_seconds_count", (("task", flaky),))] == 2

    # Each request may land on either gunicorn process: all answer the same. The
    # worker's periodic housekeeping tasks may end runs between two scrapes, so the
    # comparison is of this test's tasks, whose runs are over.
    def own(scraped: dict) -> dict:
        return {key: value for key, value in scraped.items() if "diagnostics:" in str(key)}

    assert own(samples)
    for _ in range(6):
        again = requests.get(f"{service}/metrics", headers=headers, timeout=5)
        assert own(attempts(again.text)) == own(samples)


@pytest.mark.parametrize(
    ("forwarded_for", "authorization", "status"),
    [
        (PROXY_CLIENT, None, 200),
        ("198.51.100.1", None, 401),
        ("198.51.100.1", f"Bearer {TOKEN}", 200),
        (None, None, 401),  # the proxy itself (127.0.0.1) is not on the list
        (f"{PROXY_CLIENT}, 198.51.100.1", None, 401),  # only the last hop is trusted
    ],
)
def test_the_allow_list_judges_the_address_the_trusted_proxy_saw(
    service, forwarded_for, authorization, status
):
    headers = {}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    if authorization:
        headers["Authorization"] = authorization
    response = requests.get(f"{service}/metrics", headers=headers, timeout=5)
    assert response.status_code == status
    if status == 200:
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert "# TYPE howdah_jobs gauge" in response.text
    else:
        assert "howdah_" not in response.text
