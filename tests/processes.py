"""Start Howdah's real processes (gunicorn, the worker, make run's launcher) for tests."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# A login shell's usual PATH (root's includes the sbin folders, where useradd lives).
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def scratch_dir(name: str) -> Path:
    """A folder under ./var for this test process alone (pytest-xdist workers get their own)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return ROOT / "var" / (f"{name}-{worker}" if worker else name)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_env(**settings: str) -> dict:
    """A minimal environment for a child process: PATH with the venv first, plus settings."""
    path = os.pathsep.join([str(BIN), *SYSTEM_PATH])
    return {"PATH": path, "PYTHONUNBUFFERED": "1", **settings}


# Processes started during the running test. tests/conftest.py kills those still running
# once the test's own fixtures are torn down: a fixture that fails after starting a worker
# (its server slow to answer, say) never reaches its teardown, and a worker left running
# would take the jobs of every later test on the same database.
started: list[subprocess.Popen] = []


def start(command: list[str], env: dict, log_path: Path, cwd: Path = ROOT) -> subprocess.Popen:
    """Start a process in its own session, with its output in ``log_path``."""
    with log_path.open("w") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started.append(process)
    return process


def log_records(output: str) -> list[dict]:
    """Every line of a process's output as the JSON object it must be (LOG_FORMAT=json,
    the default outside development); a line that is not one fails the test."""
    records = []
    for line in output.splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        records.append(record)
    return records


def outlive_the_test(process: subprocess.Popen) -> subprocess.Popen:
    """Leave ``process`` running after the test that started it (a module's fixture)."""
    started.remove(process)
    return process


def kill_leftovers() -> list[list[str]]:
    """Kill the processes of the test that are still running, with the children they
    started (even those a killed parent left behind); their commands."""
    left = [p for p in started if p.poll() is None or group_members(p.pid)]
    for process in left:
        with contextlib.suppress(ProcessLookupError):  # its last member ended meanwhile
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    started.clear()
    return [process.args for process in left]


WEB_COMMAND = ["gunicorn", "-c", "python:webapp.gunicorn_conf", "webapp:create_app()"]


def start_web(env: dict, log_path: Path, cwd: Path = ROOT) -> subprocess.Popen:
    """The Procfile's web line (from ``cwd``: the settings are a module of the package)."""
    return start([str(BIN / WEB_COMMAND[0]), *WEB_COMMAND[1:]], env, log_path, cwd)


def serve_web(log_path: Path, **settings: str) -> tuple[subprocess.Popen, int]:
    """The web process on a free port with these settings, once it answers; and its port."""
    port = free_port()
    process = start_web(process_env(PORT=str(port), **settings), log_path)
    wait_for(f"http://127.0.0.1:{port}/healthz")
    return process, port


def start_worker(env: dict, log_path: Path, *args: str) -> subprocess.Popen:
    """The Procfile's worker line."""
    return start([sys.executable, "-m", "tasks.worker", *args], env, log_path)


def wait_for(url: str, status: int = 200, timeout: float = 30.0) -> requests.Response:
    """Poll ``url`` until it answers ``status``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = requests.get(url, timeout=2)
            if last.status_code == status:
                return last
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or busy
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer {status} in {timeout}s (last: {last})")


def exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
    """Send ``data`` as it is on a new connection; the answer's status, headers (by lower-case
    name) and body, then whatever else came before the server closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = sock.makefile("rb")
        status = int(answer.readline().split()[1])
        headers = {}
        while (line := answer.readline().strip()) != b"":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = answer.read(int(headers.get("content-length", 0)))
        sock.shutdown(socket.SHUT_WR)
        return status, headers, body, answer.read()


def group_members(pgid: int) -> set[int]:
    """The live processes of process group ``pgid`` (a process started by ``start`` leads
    its own); a zombie, dead but not yet reaped by whoever adopted it, is not counted."""
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while we looked
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.add(int(stat.parent.name))
    return members


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
    """Signal a process and wait for it; kill its whole session if it does not exit."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    return process.returncode
