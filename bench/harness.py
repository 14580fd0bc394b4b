"""Shared set-up for the benchmarks: a fresh migrated database, processes, timing helpers."""

import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

from tests import processes
from tests.databases import Server
from webapp import accounts, migrations
from webapp.store import accounts as account_store

ROOT = Path(__file__).resolve().parent.parent
SERVER = Server(
    os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"), "bench"
)
SECRET = "bench-secret-key-0123456789abcdef"
LOGS = Path(tempfile.mkdtemp(prefix="howdah-bench-"))


@contextlib.contextmanager
def fresh_database(howdah: bool = True):
    """A new database, dropped afterwards: with Howdah's migrations applied, or with
    Procrastinate's schema alone (what the bare side would run on without Howdah)."""
    url = SERVER.create_database()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            if howdah:
                migrations.migrate(conn)
            else:
                conn.execute(migrations.procrastinate_schema().sql)
        yield url
    finally:
        SERVER.drop_database(url)


# A tenant's job: a console SMS (the diagnostics tasks are for platform tokens only).
SMS_PAYLOAD = {"organization_id": 1, "to": "+14155550123", "body": "bench"}


def api_token(url: str, platform: bool = False) -> str:
    """Organization 1 and an API token for it (or a platform token), as a client would have."""
    with psycopg.connect(url, autocommit=True) as conn:
        organization = account_store.insert_organization(conn, "Bench")
        owner = None if platform else organization["id"]
        secret, _ = accounts.new_token(conn, owner, "bench", None)
    return secret


def env(url: str, **settings: str) -> dict:
    return processes.process_env(
        DATABASE_URL=url, SECRET_KEY=SECRET, LOG_LEVEL="WARNING", **settings
    )


@contextlib.contextmanager
def web(url: str, **settings: str):
    """gunicorn on a free port, as webapp/gunicorn_conf.py configures it; yields (host, port)."""
    port = processes.free_port()
    proc = processes.start_web(env(url, PORT=str(port), **settings), LOGS / f"web-{port}.log")
    try:
        processes.wait_for(f"http://127.0.0.1:{port}/healthz")
        yield "127.0.0.1", port
    finally:
        processes.stop(proc)


def start(
    command: list[str], url: str, name: str, cwd: Path = ROOT, **settings: str
) -> subprocess.Popen:
    """A process on ``url`` with these settings, run from ``cwd`` (another checkout's code)."""
    return processes.start(command, env(url, **settings), LOGS / f"{name}.log", cwd)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    """One line describing this machine, for RESULTS.md."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 / 1024:.0f} GiB"
    with psycopg.connect(SERVER.admin_url) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0].split()[0]
    return (
        f"{os.cpu_count()} cores ({cpu}){mem}; PostgreSQL {pg}; "
        f"Python {platform.python_version()}; {platform.system()} {platform.release()}"
    )


PYTHON = sys.executable
