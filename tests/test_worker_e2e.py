"""The worker end to end: real gunicorn and worker processes, HTTP in, jobs out."""

import datetime
import itertools
import signal
import time

import pytest
import requests

from tests import processes
from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.e2e

ORG = {"organization_id": 1}


class Service:
    """A running web process plus the worker processes a test starts."""

    def __init__(self, db_url, logs, token):
        self.db_url, self.logs = db_url, logs
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.port = processes.free_port()
        self.base = f"http://127.0.0.1:{self.port}/api/v1"
        self.env = processes.process_env(
            DATABASE_URL=db_url,
            SECRET_KEY=TEST_SECRET,
            PORT=str(self.port),
            WEB_CONCURRENCY="2",
            WORKER_STALLED_AFTER="15",
            # Every job here is organization 1's; with a cap one worker could run them all.
            ORG_MAX_RUNNING="0",
            # Teardown stops workers that may still run a long job; a test that needs a
            # longer grace passes --shutdown-timeout.
            WORKER_SHUTDOWN_TIMEOUT="3",
        )
        self.workers: list = []
        self.web = processes.start_web(self.env, logs / "web.log")
        processes.wait_for(f"http://127.0.0.1:{self.port}/healthz")

    def start_worker(self, *args: str):
        log = self.logs / f"worker{len(self.workers)}.log"
        worker = processes.start_worker(self.env, log, *args)
        self.workers.append(worker)
        return worker

    def defer(self, task: str, **payload) -> int:
        response = self.http.post(
            f"{self.base}/jobs", json={"task": task, "payload": {**ORG, **payload}}, timeout=10
        )
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def job(self, job_id: int) -> dict:
        return self.http.get(f"{self.base}/jobs/{job_id}", timeout=10).json()

    def wait_status(self, job_id: int, *statuses: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id))["status"] not in statuses:
            assert time.monotonic() < deadline, f"job {job_id} stuck in {job['status']}"
            time.sleep(0.05)
        return job

    def stop(self):
        for process in [*self.workers, self.web]:
            processes.stop(process, timeout=40)


@pytest.fixture
def service(db_url, tmp_path, make_token):
    running = Service(db_url, tmp_path, make_token(None))  # diagnostics: platform tasks
    yield running
    running.stop()


def test_job_posted_over_http_succeeds(service):
    service.start_worker()
    job_id = service.defer("sms:send_notification", to="+14155550123", body="hello there")
    job = service.wait_status(job_id, "succeeded")
    assert job["attempts"] == 1
    log = (service.logs / "worker0.log").read_text()
    assert "console SMS provider, not sent: to=…0123 chars=11" in log
    assert "4155550123" not in log and "hello there" not in log  # no payload in logs
    assert job["started_at"] and job["finished_at"] and job["last_error"] is None
    attempts = service.http.get(f"{service.base}/jobs/{job_id}/attempts", timeout=10).json()
    # Successes are recorded in batches, a fraction of a second later.
    deadline = time.monotonic() + 5
    while not attempts["attempts"] and time.monotonic() < deadline:
        time.sleep(0.1)
        attempts = service.http.get(f"{service.base}/jobs/{job_id}/attempts", timeout=10).json()
    (attempt,) = attempts["attempts"]
    assert attempt["outcome"] == "succeeded"
    assert '"provider": "console"' in attempt["result_summary"]


def test_a_job_of_an_unknown_task_fails_with_its_error_on_record(service, conn):
    # Deferred around the API (by Procrastinate's own defer, say), for a task no worker has.
    job_id = conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
        " VALUES ('default', 'sms:no_such_task', '{\"organization_id\": 1}') RETURNING id"
    ).fetchone()[0]
    service.start_worker()
    job = service.wait_status(job_id, "failed")
    assert job["attempts"] == 1
    assert job["last_error"]["class"] == "TaskNotFound"
    assert "sms:no_such_task" in job["last_error"]["message"]
    rows = service.http.get(f"{service.base}/jobs/{job_id}/attempts", timeout=10).json()
    (attempt,) = rows["attempts"]
    assert (attempt["attempt"], attempt["outcome"]) == (1, "failed")
    assert attempt["error_class"] == "TaskNotFound"


def test_failing_job_retries_with_backoff_then_fails_with_its_traceback(service):
    service.start_worker()
    job_id = service.defer("diagnostics:fail_then_succeed", failures=50)
    job = service.wait_status(job_id, "failed", timeout=60)
    assert job["attempts"] == 4  # the first run and max_retries=3 retries
    assert job["last_error"] == {"class": "PlannedFailure", "message": "planned failure 4 of 50"}
    attempts = service.http.get(f"{service.base}/jobs/{job_id}/attempts", timeout=10).json()
    rows = attempts["attempts"]
    assert [a["outcome"] for a in rows] == ["failed"] * 4
    assert all("PlannedFailure: planned failure" in a["traceback"] for a in rows)
    assert all("Traceback (most recent call last)" in a["traceback"] for a in rows)
    starts = [datetime.datetime.fromisoformat(a["started_at"]) for a in rows]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(starts)]
    # Backoff 0.25, 0.5, 1 s (cap 2): each wait is at least the backoff.
    for gap, delay in zip(gaps, (0.25, 0.5, 1.0), strict=True):
        assert delay <= gap < delay + 2.0, gaps  # the 0.5 s poll, and room for a busy machine

    # Retried by hand, it runs once more (its retries are spent), numbered on from the
    # last attempt.
    response = service.http.post(f"{service.base}/jobs/{job_id}/retry", timeout=10)
    assert response.status_code == 202
    job = service.wait_status(job_id, "failed", timeout=60)
    rows = service.http.get(f"{service.base}/jobs/{job_id}/attempts", timeout=10).json()
    assert [a["attempt"] for a in rows["attempts"]] == [1, 2, 3, 4, 5]
    assert job["attempts"] == 5


def test_sigterm_lets_a_running_job_finish_and_exits_zero(service):
    worker = service.start_worker("--shutdown-timeout", "10")
    job_id = service.defer("diagnostics:sleep", seconds=3)
    service.wait_status(job_id, "doing")
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    elapsed = time.monotonic() - started
    assert elapsed < 10, "the worker waited past its grace period"
    assert service.job(job_id)["status"] == "succeeded"


def test_second_sigterm_exits_at_once(service):
    worker = service.start_worker()
    job_id = service.defer("diagnostics:sleep", seconds=60)
    service.wait_status(job_id, "doing")
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert worker.poll() is None, "the first SIGTERM waits for the running job"
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=10)
    assert time.monotonic() - started < 3


def test_sigkilled_worker_loses_no_job(service, conn):
    first = service.start_worker()
    job_id = service.defer("diagnostics:sleep", seconds=2)
    service.wait_status(job_id, "doing")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    service.start_worker()
    job = service.wait_status(job_id, "succeeded", timeout=90)
    assert job["attempts"] == 2
    outcomes = conn.execute(
        "SELECT outcome FROM job_attempts WHERE job_id = %s ORDER BY attempt", (job_id,)
    ).fetchall()
    deadline = time.monotonic() + 5
    while len(outcomes) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        outcomes = conn.execute(
            "SELECT outcome FROM job_attempts WHERE job_id = %s ORDER BY attempt", (job_id,)
        ).fetchall()
    assert [o for (o,) in outcomes] == ["lost", "succeeded"]


def test_two_thousand_jobs_on_two_workers_each_run_exactly_once(service, conn):
    for _ in range(2):
        service.start_worker("--concurrency", "10")
    ids = []
    for _ in range(2):
        batch = {"jobs": [{"task": "diagnostics:noop", "payload": ORG}] * 1000}
        response = service.http.post(f"{service.base}/jobs/batch", json=batch, timeout=30)
        assert response.status_code == 202
        ids += [job["id"] for job in response.json()["jobs"]]
    deadline = time.monotonic() + 120
    query = "SELECT count(*) FROM procrastinate_jobs WHERE id = ANY(%s) AND status = 'succeeded'"
    while conn.execute(query, (ids,)).fetchone()[0] < 2000:
        assert time.monotonic() < deadline, "jobs were lost or stuck"
        time.sleep(0.2)
    for worker in service.workers:  # a graceful stop flushes the last attempt records
        assert processes.stop(worker, signal.SIGTERM, timeout=40) == 0

    per_job = conn.execute(
        "SELECT count(*), count(DISTINCT job_id), count(DISTINCT worker_name)"
        " FROM job_attempts WHERE job_id = ANY(%s)",
        (ids,),
    ).fetchone()
    assert per_job[:2] == (2000, 2000)
    assert per_job[2] == 2, "both workers took jobs"
    starts = conn.execute(
        "SELECT count(*) FROM procrastinate_events WHERE job_id = ANY(%s) AND type = 'started'",
        (ids,),
    ).fetchone()[0]
    assert starts == 2000


def test_cancelling_a_running_job_aborts_it_and_it_can_run_again(service):
    service.start_worker()
    job_id = service.defer("diagnostics:sleep", seconds=30)
    service.wait_status(job_id, "doing")
    response = service.http.post(f"{service.base}/jobs/{job_id}/cancel", timeout=10)
    assert response.status_code == 202
    job = service.wait_status(job_id, "aborted", "failed", timeout=15)
    assert job["status"] == "aborted"
    retried = service.http.post(f"{service.base}/jobs/{job_id}/retry", timeout=10).json()
    assert retried["retried_from"] == job_id and retried["status"] == "todo"


def test_a_running_jobs_progress_shows_in_the_api_and_ends_at_one(service):
    service.start_worker()
    job_id = service.defer("diagnostics:work_in_steps", steps=8, seconds_per_step=0.5)
    seen = []
    deadline = time.monotonic() + 30
    while (job := service.job(job_id))["status"] != "succeeded":
        assert time.monotonic() < deadline, f"job {job_id} stuck in {job['status']}"
        if job["status"] == "doing" and job["progress"] is not None:
            seen.append(job["progress"]["fraction"])
        time.sleep(0.1)
    assert any(0 < fraction < 1 for fraction in seen), seen  # shown while it ran
    assert seen == sorted(seen)
    assert len(set(seen)) >= 3, "the page would have moved as the job went"
    assert job["progress"]["fraction"] == 1.0
    assert job["progress"]["message"] == "step 8 of 8"
    finished = datetime.datetime.fromisoformat(job["finished_at"])
    assert datetime.datetime.fromisoformat(job["progress"]["updated_at"]) <= finished
