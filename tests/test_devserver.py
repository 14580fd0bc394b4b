"""`make run`: embedded PostgreSQL, migrations, web and worker, and a clean stop."""

import os
import re
import shutil
import signal

import psutil
import pytest
import requests

from tests import processes
from webapp import embedded
from webapp.embedded import EmbeddedPostgres

pytestmark = pytest.mark.e2e


@pytest.fixture
def data_dir():
    """A data folder inside the project (as make run's ./var), removed afterwards."""
    path = processes.scratch_dir("test-devserver")
    shutil.rmtree(path, ignore_errors=True)
    yield path
    EmbeddedPostgres(path / "pgdata").stop()
    shutil.rmtree(path, ignore_errors=True)


def postgres_processes(data_dir) -> list[psutil.Process]:
    """Server processes whose data directory is under ``data_dir``."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "postgres" and str(data_dir) in cmdline:
            found.append(proc)
    return found


def launch(data_dir, log_path, command=("make", "--no-print-directory", "run"), **settings):
    port = processes.free_port()
    env = processes.process_env(HOWDAH_DATA_DIR=str(data_dir), PORT=str(port), **settings)
    process = processes.start(list(command), env, log_path)
    base = f"http://127.0.0.1:{port}"
    return process, base


def wait_ready(process, base, log_path):
    try:
        return processes.wait_for(f"{base}/readyz", timeout=90)
    except AssertionError:
        process.kill()
        raise AssertionError(log_path.read_text()) from None


def test_make_run_uses_embedded_postgres_and_stops_it_on_sigterm(data_dir, tmp_path):
    log = tmp_path / "run.log"
    run, base = launch(data_dir, log)
    wait_ready(run, base, log)
    output = log.read_text()
    assert "Starting the embedded PostgreSQL" in output
    assert f"Howdah is running at http://127.0.0.1:{base.rsplit(':', 1)[1]}/" in output
    assert (data_dir / "pgdata" / "PG_VERSION").exists()
    assert postgres_processes(data_dir)
    # The first run creates a demo admin and token, and prints them once.
    token = re.search(r"API token for Demo \(shown once\): (\S+)", output).group(1)
    jobs = requests.get(
        f"{base}/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert jobs.status_code == 200
    password = re.search(r"as admin@example\.com with password (\S+)", output).group(1)
    assert len(password) >= 12

    processes.stop(run, signal.SIGTERM, timeout=60)
    assert postgres_processes(data_dir) == []
    assert "Stopping the embedded PostgreSQL" in log.read_text()

    # A second run reuses the data: nothing left to migrate. Ctrl-C (SIGINT) stops it too.
    log2 = tmp_path / "run2.log"
    second, base = launch(
        data_dir, log2, command=(processes.BIN / "python", "-m", "webapp.devserver")
    )
    wait_ready(second, base, log2)
    assert "Nothing to migrate." in log2.read_text()
    assert "First run" not in log2.read_text()
    assert (
        requests.get(
            f"{base}/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=5
        ).status_code
        == 200
    )
    assert processes.stop(second, signal.SIGINT, timeout=60) == 130  # as a shell reports Ctrl-C
    assert postgres_processes(data_dir) == []


def test_make_run_with_database_url_starts_no_embedded_server(data_dir, tmp_path, db_url):
    log = tmp_path / "run.log"
    run, base = launch(data_dir, log, DATABASE_URL=db_url)
    wait_ready(run, base, log)
    processes.stop(run, signal.SIGTERM, timeout=60)
    assert "embedded" not in log.read_text()
    assert not (data_dir / "pgdata").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root needs a system user for the server")
def test_root_without_useradd_gets_one_line_saying_so(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "SERVER_ACCOUNT", "howdah_no_such_account")
    monkeypatch.setenv("PATH", str(tmp_path))  # no useradd to create the account
    with pytest.raises(embedded.EmbeddedServerError, match="useradd is not on PATH"):
        embedded.EmbeddedPostgres(tmp_path / "pgdata").start()
    assert not (tmp_path / "pgdata").exists()
