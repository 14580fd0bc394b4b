"""A real worker process waiting on full slots while notifications arrive."""

import json
import time

import psutil
import pytest

from tests import processes
from tests.test_worker_processes import wait_for_workers

pytestmark = pytest.mark.e2e

SLEEP = json.dumps({"organization_id": 1, "seconds": 6})
NOOP = json.dumps({"organization_id": 1})


def add_job(conn, queue: str, task: str, args: str) -> int:
    """One job, inserted as any program writing to the queue could (its NOTIFY included)."""
    return conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args) VALUES (%s, %s, %s)"
        " RETURNING id",
        (queue, task, args),
    ).fetchone()[0]


def wait_statuses(conn, ids: list[int], status: str, timeout: float) -> float:
    """Seconds until every job of ``ids`` has ``status``; fails after ``timeout``."""
    started = time.monotonic()
    while True:
        (count,) = conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE id = ANY(%s) AND status = %s",
            (ids, status),
        ).fetchone()
        if count == len(ids):
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"{count} of {len(ids)} jobs {status}"
        time.sleep(0.05)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def test_a_worker_with_every_slot_busy_sleeps_through_notifications(db_url, conn, tmp_path):
    env = processes.process_env(
        DATABASE_URL=db_url, ORG_MAX_RUNNING="0", WORKER_SHUTDOWN_TIMEOUT="10"
    )
    worker = processes.start_worker(env, tmp_path / "worker.log", "--concurrency", "2")
    wait_for_workers(conn, 1)
    # Both tenant slots, and the housekeeping lane's one slot, hold a sleep.
    sleeps = [add_job(conn, "default", "diagnostics:sleep", SLEEP) for _ in range(2)]
    sleeps.append(add_job(conn, "housekeeping", "diagnostics:sleep", SLEEP))
    wait_statuses(conn, sleeps, "doing", timeout=10)

    # Each job inserted now notifies its lane while the lane has no free slot.
    process = psutil.Process(worker.pid)
    before = cpu_seconds(process)
    waiting = []
    for _ in range(6):
        waiting.append(add_job(conn, "default", "diagnostics:noop", NOOP))
        waiting.append(add_job(conn, "housekeeping", "diagnostics:noop", NOOP))
        time.sleep(0.5)
    used = cpu_seconds(process) - before
    # A lane that spins on a stale wake-up burns about a second of CPU a second.
    assert used < 0.3, f"the worker used {used:.2f} s of CPU in 3 s with every slot busy"
    wait_statuses(conn, waiting, "todo", timeout=0)  # none taken yet

    # As soon as the sleeps end, their slots take the waiting jobs.
    wait_statuses(conn, sleeps + waiting, "succeeded", timeout=15)
    assert processes.stop(worker) == 0
