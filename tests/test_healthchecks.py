"""The images' HEALTHCHECK commands, run for real: ``python -m tasks.worker.healthcheck``
against running worker processes, and ``python -m webapp.probe`` against gunicorn."""

import signal
import socket
import subprocess
import sys
import time

import pytest

from tests import processes
from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.e2e


def run_module(module: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=processes.ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def check(env: dict, *args: str) -> subprocess.CompletedProcess:
    return run_module("tasks.worker.healthcheck", env, *args)


def check_until(env: dict, returncode: int, *args: str, timeout: float = 30.0):
    """Run the check until it exits ``returncode``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (done := check(env, *args)).returncode != returncode:
        assert time.monotonic() < deadline, f"check never exited {returncode}: {done}"
        time.sleep(0.3)
    return done


def one_line(text: str) -> str:
    """The only line of ``text``; fails on more (a traceback, say) or none."""
    (line,) = text.splitlines()
    return line


@pytest.fixture
def worker_env(db_url):
    """Settings for a worker and for its check (they share a container's environment)."""
    return processes.process_env(DATABASE_URL=db_url, WORKER_SHUTDOWN_TIMEOUT="3")


def test_healthy_workers_of_this_host_pass(worker_env, tmp_path):
    env = {**worker_env, "WORKER_PROCESSES": "2"}  # found by host, as in a container
    worker = processes.start_worker(env, tmp_path / "worker.log")
    done = check_until(env, 0)
    host = socket.gethostname()
    assert one_line(done.stdout).startswith(f"ok: worker processes on host {host}, oldest heart")
    assert done.stderr == ""
    assert processes.stop(worker) == 0


def test_a_stopped_worker_fails_until_it_runs_again(worker_env, tmp_path):
    env = {**worker_env, "WORKER_NAME": "hc-restart"}
    worker = processes.start_worker(env, tmp_path / "worker.log")
    assert one_line(check_until(env, 0).stdout).startswith("ok: worker hc-restart, oldest")
    assert processes.stop(worker) == 0
    done = check(env)
    assert done.returncode == 1 and done.stdout == ""
    assert one_line(done.stderr).startswith("worker hc-restart stopped at ")
    # A new process under the same name registers anew: the old row no longer counts.
    worker = processes.start_worker(env, tmp_path / "worker2.log")
    check_until(env, 0)
    assert processes.stop(worker) == 0


def test_a_silent_worker_fails_once_its_heartbeat_is_stale(worker_env, tmp_path):
    env = {**worker_env, "WORKER_NAME": "hc-killed"}
    worker = processes.start_worker(env, tmp_path / "worker.log")
    check_until(env, 0)
    processes.stop(worker, signal.SIGKILL)  # no clean stop: the row stays, silent
    done = check_until({**env, "WORKER_STALE_SECONDS": "1"}, 1, timeout=10)
    assert one_line(done.stderr).startswith("worker hc-killed: last heartbeat ")
    assert "(WORKER_STALE_SECONDS=1)" in done.stderr


def test_an_unknown_worker_fails(worker_env):
    done = check(worker_env, "--name", "nobody")
    assert done.returncode == 1
    assert one_line(done.stderr) == "unknown: no registration of worker nobody"
    done = check({**worker_env, "WORKER_NAME": "pair", "WORKER_PROCESSES": "2"})
    assert one_line(done.stderr) == "unknown: no registration of worker pair.1, pair.2"


def test_the_check_reads_the_direct_url_as_the_worker_does(db_url, tmp_path):
    # DATABASE_URL goes through a pooler that is down; the worker does not use it.
    dead = f"postgresql://postgres@127.0.0.1:{processes.free_port()}/howdah"
    env = processes.process_env(
        DATABASE_URL=dead,
        DIRECT_DATABASE_URL=db_url,
        WORKER_NAME="hc-direct",
        WORKER_SHUTDOWN_TIMEOUT="3",
        DB_CONNECT_TIMEOUT="2",
    )
    worker = processes.start_worker(env, tmp_path / "worker.log")
    assert one_line(check_until(env, 0).stdout).startswith("ok: worker hc-direct, oldest")
    assert processes.stop(worker) == 0


def test_an_unreachable_database_fails_in_one_line():
    url = f"postgresql://postgres@127.0.0.1:{processes.free_port()}/howdah"
    done = check(processes.process_env(DATABASE_URL=url, DB_CONNECT_TIMEOUT="2"))
    assert done.returncode == 1
    assert one_line(done.stderr).startswith("database unreachable: connection failed: ")


def test_a_bad_setting_fails_in_one_line(worker_env):
    done = check({**worker_env, "WORKER_STALE_SECONDS": "0"})
    assert done.returncode == 1
    assert one_line(done.stderr) == (
        "howdah: configuration error: WORKER_STALE_SECONDS must be at least 1, got 0"
    )


def test_web_probe_passes_a_ready_web_process(db_url, tmp_path):
    web, port = processes.serve_web(
        tmp_path / "web.log", DATABASE_URL=db_url, SECRET_KEY=TEST_SECRET
    )
    # A proxy the container inherited (Docker passes them on) is not asked.
    proxy = "http://127.0.0.1:9"
    env = processes.process_env(PORT=str(port), http_proxy=proxy, HTTP_PROXY=proxy)
    done = run_module("webapp.probe", env)
    assert done.returncode == 0, done
    assert one_line(done.stdout) == "ok: /readyz answered 200"
    processes.stop(web)


def test_web_probe_fails_with_pending_migrations_or_no_server(empty_db_url, tmp_path):
    web, port = processes.serve_web(
        tmp_path / "web.log", DATABASE_URL=empty_db_url, SECRET_KEY=TEST_SECRET
    )
    done = run_module("webapp.probe", processes.process_env(PORT=str(port)))
    assert done.returncode == 1
    assert one_line(done.stderr).startswith("not ready: /readyz answered 503: ")
    processes.stop(web)
    done = run_module("webapp.probe", processes.process_env(PORT=str(port)))
    assert done.returncode == 1
    assert one_line(done.stderr).startswith(f"no answer from http://127.0.0.1:{port}/readyz: ")
