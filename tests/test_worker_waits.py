"""A real worker process waiting: on full slots while notifications arrive, and on a
database that refuses it until a role is created."""

import json
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
import pytest
from psycopg import sql

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


@pytest.fixture
def missing_role(db_url):
    """A role name nobody has created, with the URL of the test database as that role
    (with a password, which must never reach a log); the role is dropped at the end."""
    name = f"howdah_test_role_{uuid.uuid4().hex[:8]}"
    password = f"pw{uuid.uuid4().hex}"
    parts = urlsplit(db_url)
    netloc = f"{name}:{password}@{parts.hostname}:{parts.port or 5432}"
    yield name, password, urlunsplit(parts._replace(netloc=netloc))
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def wait_for_record(path, action: str, timeout: float) -> dict:
    """The first log record of ``action`` in the worker's log, once there is one."""
    deadline = time.monotonic() + timeout
    while not (found := [r for r in records(path) if r.get("action") == action]):
        assert time.monotonic() < deadline, f"no {action} in the log:\n{path.read_text()}"
        time.sleep(0.1)
    return found[0]


def records(path) -> list[dict]:
    """The log's complete lines, as records."""
    text = path.read_text()
    return processes.log_records(text[: text.rfind("\n") + 1])


def test_a_worker_refused_by_the_database_says_why_once_and_waits(
    missing_role, conn, db_url, tmp_path
):
    role, password, url = missing_role
    env = processes.process_env(DATABASE_URL=url, DB_CONNECT_TIMEOUT="2")
    log_path = tmp_path / "worker.log"
    worker = processes.start_worker(env, log_path)
    line = wait_for_record(log_path, "database_unavailable", timeout=30)["message"]
    # The pool's timeout, and why a new connection fails.
    assert line.startswith("database unavailable (register): PoolTimeout: ")
    assert f'role "{role}" does not exist' in line

    time.sleep(3)  # it keeps trying, and says so no more
    assert worker.poll() is None
    assert log_path.read_text().count("database unavailable") == 1

    # The role an operator creates late is taken up.
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE current_user").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
    wait_for_workers(conn, 1, timeout=30)
    wait_for_record(log_path, "database_available", timeout=10)
    wait_for_record(log_path, "worker_start", timeout=10)
    assert processes.stop(worker) == 0
    assert password not in log_path.read_text()
