"""Real gunicorn and worker processes against the test database."""

import re
import signal
import time

import procrastinate
import pytest
import requests

from tasks.app import app as procrastinate_app
from tasks.diagnostics import noop
from tests import processes
from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.e2e


@pytest.fixture
def service(db_url, tmp_path, make_token):
    """gunicorn (2 workers) and one worker process, stopped with SIGTERM afterwards."""
    port = processes.free_port()
    env = processes.process_env(
        DATABASE_URL=db_url, SECRET_KEY=TEST_SECRET, PORT=str(port), WEB_CONCURRENCY="2"
    )
    web = processes.start_web(env, tmp_path / "web.log")
    worker = processes.start_worker(env, tmp_path / "worker.log", "--concurrency", "2")
    base = f"http://127.0.0.1:{port}"
    processes.wait_for(f"{base}/healthz")
    admin = {"Authorization": f"Bearer {make_token(None)}"}
    yield {"base": base, "web": web, "worker": worker, "logs": tmp_path, "admin": admin}
    for process in (web, worker):
        processes.stop(process)


def test_ready_with_a_fresh_worker_heartbeat(service):
    base = service["base"]
    assert requests.get(f"{base}/readyz", timeout=5).json() == {"status": "ready"}

    deadline = time.monotonic() + 20
    while True:
        status = requests.get(
            f"{base}/api/admin/status", headers=service["admin"], timeout=5
        ).json()
        if status["workers"]:
            break
        assert time.monotonic() < deadline, "the worker never registered"
        time.sleep(0.2)
    (worker,) = status["workers"]
    assert worker["stale"] is False
    assert worker["heartbeat_age_seconds"] < 12  # heartbeats come every 10 s
    assert status["database"]["pending_migrations"] == []


def test_worker_runs_a_job_and_both_stop_cleanly_on_sigterm(service, db_url, conn):
    connector = procrastinate.SyncPsycopgConnector(conninfo=db_url)
    with procrastinate_app.replace_connector(connector) as app:
        app.open()
        job_id = noop.defer(organization_id=1)
        app.close()

    deadline = time.monotonic() + 20
    while (
        conn.execute("SELECT status FROM procrastinate_jobs WHERE id = %s", (job_id,)).fetchone()[0]
        != "succeeded"
    ):
        assert time.monotonic() < deadline, "the job did not succeed"
        time.sleep(0.1)

    assert processes.stop(service["worker"], signal.SIGTERM, timeout=35) == 0
    assert processes.stop(service["web"], signal.SIGTERM, timeout=35) == 0
    assert re.search(r"worker \S+ stopped", (service["logs"] / "worker.log").read_text())
    # The worker unregistered itself on the way out.
    assert conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()[0] == 0


@pytest.mark.parametrize("missing", ["DATABASE_URL", "SECRET_KEY"])
def test_gunicorn_refuses_to_start_without_required_settings(db_url, tmp_path, missing):
    settings = {
        "DATABASE_URL": db_url,
        "SECRET_KEY": TEST_SECRET,
        "PORT": str(processes.free_port()),
    }
    del settings[missing]
    web = processes.start_web(processes.process_env(**settings), tmp_path / "web.log")
    assert web.wait(timeout=30) != 0
    output = (tmp_path / "web.log").read_text()
    assert "Traceback" not in output
    assert output.strip().splitlines()[-1].startswith(f"howdah: configuration error: {missing}")


def test_worker_refuses_to_start_without_database_url(tmp_path):
    worker = processes.start_worker(processes.process_env(), tmp_path / "worker.log")
    assert worker.wait(timeout=30) != 0
    output = (tmp_path / "worker.log").read_text().strip()
    assert (
        output == "howdah: configuration error: DATABASE_URL is required "
        "(for example postgresql://postgres@localhost/howdah)"
    )
