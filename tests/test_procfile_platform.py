"""The Procfile as a platform runs it: ``release`` once on a fresh database, then
``honcho start web worker``; a job posted over the API ends, and a stop ends both."""

import re
import shlex
import signal
import subprocess
import time

import psutil
import psycopg
import pytest
import requests
from honcho.environ import parse_procfile

from tests import processes
from tests.conftest import TEST_SECRET, sms_job
from webapp import accounts
from webapp.store import accounts as account_store

pytestmark = pytest.mark.e2e


def procfile_line(name: str) -> list[str]:
    lines = parse_procfile((processes.ROOT / "Procfile").read_text()).processes
    return shlex.split(lines[name])


def organization_token(url: str) -> tuple[int, str]:
    """An organization and an API token for it, as the other e2e tests make them."""
    with psycopg.connect(url, autocommit=True) as conn:
        organization = account_store.insert_organization(conn, "Procfile")["id"]
        secret, _ = accounts.new_token(conn, organization, "procfile", None)
    return organization, secret


def wait_status(http: requests.Session, url: str, status: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while (job := http.get(url, timeout=10).json())["status"] != status:
        assert time.monotonic() < deadline, f"job stuck in {job['status']}"
        time.sleep(0.1)
    return job


def test_honcho_runs_web_and_worker_after_release(empty_db_url, tmp_path):
    port = processes.free_port()
    env = processes.process_env(
        DATABASE_URL=empty_db_url,
        SECRET_KEY=TEST_SECRET,
        PORT=str(port),
        WEB_CONCURRENCY="1",
        # honcho kills what still runs 5 s after its SIGTERM.
        WORKER_SHUTDOWN_TIMEOUT="1",
        # The lines read below are the text format's.
        LOG_FORMAT="text",
    )
    release = subprocess.run(
        procfile_line("release"), env=env, cwd=processes.ROOT, capture_output=True, timeout=120
    )
    assert release.returncode == 0, release
    organization, token = organization_token(empty_db_url)
    empty_env_file = tmp_path / "empty.env"  # not the checkout's .env
    empty_env_file.touch()
    honcho = processes.start(
        [str(processes.BIN / "honcho"), "start", "-e", str(empty_env_file), "web", "worker"],
        env,
        tmp_path / "honcho.log",
    )
    processes.wait_for(f"http://127.0.0.1:{port}/readyz")
    started = psutil.Process(honcho.pid).children(recursive=True)

    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    base = f"http://127.0.0.1:{port}/api/v1/jobs"
    posted = http.post(base, json=sms_job(organization), timeout=10)
    assert posted.status_code == 202, posted.text
    job = wait_status(http, f"{base}/{posted.json()['id']}", "succeeded")
    assert job["attempts"] == 1

    http.close()

    assert processes.stop(honcho, signal.SIGTERM, timeout=30) == 143  # honcho's code for it
    log = (tmp_path / "honcho.log").read_text()
    # honcho signals each process group; the shell it runs each line in dies of the
    # signal (rc=-15), while the processes in it stop gracefully, before its SIGKILL.
    assert "Shutting down: Master" in log and "tasks.worker: worker " in log, log
    assert re.search(r"tasks\.worker: worker \S+ stopped$", log, re.M), log
    assert "SIGKILL" not in log
    assert not [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    with psycopg.connect(empty_db_url) as conn:
        stopped = conn.execute(
            "SELECT count(*) FILTER (WHERE stopped_at IS NOT NULL), count(*) FROM worker_registry"
        ).fetchone()
    assert stopped == (1, 1)  # the worker unregistered cleanly
