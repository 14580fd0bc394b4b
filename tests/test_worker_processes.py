"""``python -m tasks.worker --processes N``: real parent and child processes, real jobs."""

import json
import os
import signal
import time

import pytest

from tasks.worker import supervisor
from tests import processes

pytestmark = pytest.mark.e2e

ORG = {"organization_id": 1}


@pytest.fixture
def start(db_url, orgs, tmp_path):
    """Start ``python -m tasks.worker`` with these flags; its log is ``tmp_path/worker.log``."""
    env = processes.process_env(
        DATABASE_URL=db_url, ORG_MAX_RUNNING="0", WORKER_SHUTDOWN_TIMEOUT="3"
    )
    started = []

    def factory(*args: str):
        worker = processes.start_worker(env, tmp_path / "worker.log", *args)
        started.append(worker)
        return worker

    yield factory
    for worker in started:
        processes.stop(worker, timeout=40)


def log_of(tmp_path) -> str:
    return (tmp_path / "worker.log").read_text()


def wait_for_workers(conn, count: int, timeout: float = 30) -> dict[int, dict]:
    """The registered (running) workers, by id, once there are ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        rows = conn.execute(
            "SELECT r.worker_id, r.name, r.pid FROM worker_registry r"
            " JOIN procrastinate_workers w ON w.id = r.worker_id"
        ).fetchall()
        if len(rows) >= count:
            return {worker_id: {"name": name, "pid": pid} for worker_id, name, pid in rows}
        assert time.monotonic() < deadline, f"{len(rows)} of {count} workers registered"
        time.sleep(0.1)


def defer(conn, task: str, count: int = 1, **payload) -> list[int]:
    rows = conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
        " SELECT 'default', %s, %s FROM generate_series(1, %s) RETURNING id",
        (task, json.dumps({**ORG, **payload}), count),
    ).fetchall()
    return [job_id for (job_id,) in rows]


def wait_status(conn, job_id: int, status: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute(
            "SELECT status, worker_id, attempts FROM procrastinate_jobs WHERE id = %s", (job_id,)
        ).fetchone()
        if row[0] == status:
            return {"worker_id": row[1], "attempts": row[2]}
        assert time.monotonic() < deadline, f"job {job_id} stuck in {row[0]}"
        time.sleep(0.05)


def wait_until_gone(pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while left := processes.group_members(pgid):
        assert time.monotonic() < deadline, f"processes {left} outlived their parent"
        time.sleep(0.1)


def stopped_cleanly(conn, pid: int) -> bool:
    """Whether the worker of ``pid`` unregistered (its graceful stop's last step)."""
    (stopped,) = conn.execute(
        "SELECT stopped_at IS NOT NULL FROM worker_registry WHERE pid = %s", (pid,)
    ).fetchone()
    return stopped


def test_two_processes_share_the_jobs_once_and_stop_together_on_sigterm(start, conn, tmp_path):
    parent = start("--processes", "2", "--concurrency", "5", "--name", "pair")
    workers = wait_for_workers(conn, 2)
    assert sorted(w["name"] for w in workers.values()) == ["pair.1", "pair.2"]
    children = {w["pid"] for w in workers.values()}
    assert processes.group_members(parent.pid) == children | {parent.pid}

    # Quarter-second jobs first: one process alone would need 2 s for them, so however
    # loaded the machine, the other takes a share; then no-op jobs by the thousand.
    ids = defer(conn, "diagnostics:sleep", 40, seconds=0.25) + defer(conn, "diagnostics:noop", 1960)
    deadline = time.monotonic() + 120
    query = "SELECT count(*) FROM procrastinate_jobs WHERE id = ANY(%s) AND status = 'succeeded'"
    while conn.execute(query, (ids,)).fetchone()[0] < 2000:
        assert time.monotonic() < deadline, "jobs were lost or stuck"
        time.sleep(0.2)
    assert processes.stop(parent, signal.SIGTERM, timeout=40) == 0
    assert not processes.group_members(parent.pid), "the parent exited before a child"
    assert all(stopped_cleanly(conn, pid) for pid in children)

    per_job = conn.execute(
        "SELECT count(*), count(DISTINCT job_id), array_agg(DISTINCT worker_name ORDER BY"
        " worker_name) FROM job_attempts WHERE job_id = ANY(%s)",
        (ids,),
    ).fetchone()
    assert per_job == (2000, 2000, ["pair.1", "pair.2"])  # each ran once; both took jobs
    starts = conn.execute(
        "SELECT count(*) FROM procrastinate_events WHERE job_id = ANY(%s) AND type = 'started'",
        (ids,),
    ).fetchone()[0]
    assert starts == 2000
    # Several processes share the output: each line names its own.
    said = [(r["pid"], r["logger"], r["message"]) for r in processes.log_records(log_of(tmp_path))]

    def said_by(pid: int, start: str) -> bool:
        return any((p, lg) == (pid, "tasks.worker") and m.startswith(start) for p, lg, m in said)

    assert said_by(parent.pid, "started 2 worker processes")
    assert all(said_by(pid, "worker pair.") for pid in children)


def test_a_killed_child_stops_the_other_gracefully_and_fails_the_command(start, conn, tmp_path):
    parent = start("--processes", "2", "--shutdown-timeout", "10")
    workers = wait_for_workers(conn, 2)
    (job_id,) = defer(conn, "diagnostics:sleep", seconds=3)
    running_on = workers[wait_status(conn, job_id, "doing")["worker_id"]]["pid"]
    (victim,) = {w["pid"] for w in workers.values()} - {running_on}

    os.kill(victim, signal.SIGKILL)
    assert parent.wait(timeout=40) == 1
    assert not processes.group_members(parent.pid)
    # The other child stopped as after a SIGTERM: it let its job finish and unregistered.
    assert wait_status(conn, job_id, "succeeded", timeout=1)["attempts"] == 1
    assert stopped_cleanly(conn, running_on)
    log = log_of(tmp_path)
    assert log.count("unasked") == 1
    assert f"(pid {victim}) was killed by SIGKILL unasked; stopping the other" in log


def test_a_child_stopped_by_its_own_signal_stops_the_command_cleanly(start, conn, tmp_path):
    # A tool that signals the children before their parent: each stop is a stop, not a crash.
    parent = start("--processes", "2", "--shutdown-timeout", "10")
    workers = wait_for_workers(conn, 2)
    (job_id,) = defer(conn, "diagnostics:sleep", seconds=1)
    running_on = workers[wait_status(conn, job_id, "doing")["worker_id"]]["pid"]
    (other,) = {w["pid"] for w in workers.values()} - {running_on}

    os.kill(other, signal.SIGTERM)
    assert parent.wait(timeout=30) == 0
    assert not processes.group_members(parent.pid)
    assert wait_status(conn, job_id, "succeeded", timeout=1)["attempts"] == 1
    assert all(stopped_cleanly(conn, pid) for pid in (running_on, other))
    assert f"(pid {other}) exited with status 0: stopped by a signal of its own" in log_of(tmp_path)


def test_children_stop_gracefully_when_the_parent_is_killed(start, conn):
    parent = start("--processes", "2")
    workers = wait_for_workers(conn, 2)
    (job_id,) = defer(conn, "diagnostics:sleep", seconds=1)
    wait_status(conn, job_id, "doing")

    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    wait_until_gone(parent.pid, timeout=15)
    assert all(stopped_cleanly(conn, w["pid"]) for w in workers.values())
    assert wait_status(conn, job_id, "succeeded", timeout=1)["attempts"] == 1


def test_children_still_starting_stop_when_the_parent_is_killed(start):
    parent = start("--processes", "2")
    deadline = time.monotonic() + 10
    while len(processes.group_members(parent.pid)) < 3:  # the parent and both children
        assert time.monotonic() < deadline, "the children did not start"
        time.sleep(0.01)
    parent.send_signal(signal.SIGKILL)  # before they could watch for it: they see it later
    parent.wait(timeout=10)
    wait_until_gone(parent.pid, timeout=20)


def test_a_stop_signalled_to_every_process_is_taken_once(start, conn):
    # What a terminal's Ctrl-C, systemd and Heroku do: the children get the signal besides
    # the parent's order, and must not take the two for a second stop request.
    parent = start("--processes", "2", "--shutdown-timeout", "10")
    wait_for_workers(conn, 2)
    (job_id,) = defer(conn, "diagnostics:sleep", seconds=2)
    wait_status(conn, job_id, "doing")

    os.killpg(parent.pid, signal.SIGTERM)
    assert parent.wait(timeout=30) == 0
    assert wait_status(conn, job_id, "succeeded", timeout=1)["attempts"] == 1


def test_a_second_signal_makes_the_children_abort_at_once(start, conn):
    parent = start("--processes", "2", "--shutdown-timeout", "30")
    wait_for_workers(conn, 2)
    (job_id,) = defer(conn, "diagnostics:sleep", seconds=60)
    wait_status(conn, job_id, "doing")

    parent.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert parent.poll() is None, "the first SIGTERM waits for the running job"
    started = time.monotonic()
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=20) == 0
    assert time.monotonic() - started < 5
    assert not processes.group_members(parent.pid)
    (outcome,) = conn.execute(
        "SELECT outcome FROM job_attempts WHERE job_id = %s", (job_id,)
    ).fetchone()
    assert outcome == "aborted"


def test_a_child_that_does_not_stop_is_killed_after_the_grace(start, conn, tmp_path):
    parent = start("--processes", "2", "--shutdown-timeout", "1")
    workers = wait_for_workers(conn, 2)
    frozen, other = sorted(w["pid"] for w in workers.values())
    os.kill(frozen, signal.SIGSTOP)

    started = time.monotonic()
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=60) == 1
    assert time.monotonic() - started >= 1 + supervisor.STOP_GRACE - 0.5
    assert not processes.group_members(parent.pid)
    assert stopped_cleanly(conn, other)
    log = log_of(tmp_path)
    assert f"(pid {frozen}) still running 21 s after the stop; killing it" in log
