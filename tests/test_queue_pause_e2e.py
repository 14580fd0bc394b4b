"""Pausing a queue with a real worker process: its jobs wait, running ones finish, and a
resume wakes the worker at once (by notification: its poll is set far longer here)."""

import time

import pytest

from tests import processes
from tests.conftest import TEST_SECRET
from webapp import queue_controls

pytestmark = pytest.mark.e2e

POLL_INTERVAL = 30  # a job picked up within a second came by notification, not by poll


@pytest.fixture
def worker(db_url, tmp_path):
    env = processes.process_env(
        DATABASE_URL=db_url,
        SECRET_KEY=TEST_SECRET,
        WORKER_POLL_INTERVAL=str(POLL_INTERVAL),
        WORKER_SHUTDOWN_TIMEOUT="3",
        ORG_MAX_RUNNING="0",
    )
    process = processes.start_worker(env, tmp_path / "worker.log")
    yield process
    processes.stop(process, timeout=40)


def insert(conn, task="diagnostics:noop", queue="default", args='{"organization_id": 1}'):
    return conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args) VALUES (%s, %s, %s)"
        " RETURNING id",
        (queue, task, args),
    ).fetchone()[0]


def status(conn, job_id) -> str:
    query = "SELECT status::text FROM procrastinate_jobs WHERE id = %s"
    return conn.execute(query, (job_id,)).fetchone()[0]


def wait_status(conn, job_id, *statuses, timeout=30.0) -> float:
    """Wait for a job to reach one of ``statuses``; returns the seconds it took."""
    start = time.monotonic()
    while (now := status(conn, job_id)) not in statuses:
        assert time.monotonic() - start < timeout, f"job {job_id} stuck in {now}"
        time.sleep(0.02)
    return time.monotonic() - start


def test_a_paused_queue_waits_and_a_resumed_one_runs_at_once(conn, orgs, worker):
    wait_status(conn, insert(conn), "succeeded")  # the worker is up and listening
    sleeper = insert(conn, "diagnostics:sleep", args='{"organization_id": 1, "seconds": 1.5}')
    wait_status(conn, sleeper, "doing")
    with conn.transaction():
        assert queue_controls.pause(conn, "default", "test")

    held = insert(conn)
    elsewhere = insert(
        conn,
        "sms:send_notification",
        queue="sms-notifications",
        args=('{"organization_id": 1, "to": "+14155550123", "body": "hi"}'),
    )
    wait_status(conn, elsewhere, "succeeded")  # other queues go on
    wait_status(conn, sleeper, "succeeded")  # the running job finishes normally
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert status(conn, held) == "todo"
        time.sleep(0.1)
    assert worker.poll() is None

    with conn.transaction():
        assert queue_controls.resume(conn, "default") is not None
    assert wait_status(conn, held, "doing", "succeeded", timeout=POLL_INTERVAL) < 1.0
    wait_status(conn, held, "succeeded")


def test_retrying_failed_jobs_wakes_the_worker(conn, worker):
    wait_status(conn, insert(conn), "succeeded")
    failed = conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)"
        " VALUES ('default', 'diagnostics:noop', '{\"organization_id\": 1}', 'failed')"
        " RETURNING id"
    ).fetchone()[0]
    time.sleep(0.2)  # the worker is idle, waiting for news
    with conn.transaction():
        assert queue_controls.retry_failed(conn, "default", None, platform=True).retried == 1
    assert wait_status(conn, failed, "doing", "succeeded", timeout=POLL_INTERVAL) < 1.0
