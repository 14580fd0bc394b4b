"""Drain 20,000 jobs with Howdah's worker, beside the stock Procrastinate worker and PgQueuer.

Every side drains its own fresh database, one after the other in one run:

- no-op jobs at concurrency 10: Howdah's worker with no cap per organization (like for
  like), with a cap that never binds (ORG_MAX_RUNNING=1000: the price of the cap check),
  and as two processes (``--processes 2``, 10 slots each); the stock worker
  (``procrastinate worker``, which is ``app.run_worker_async``, no middleware) on
  Procrastinate's schema alone; PgQueuer's worker on its own schema (asyncpg,
  ``bench/pgqueuer_side.py``);
- jobs that each await 20 ms of simulated I/O, at concurrency 100: Howdah's
  ``diagnostics:sleep`` beside a bare task that sleeps as long.

The rate runs from the first job's start to the last job's end, read from each system's
own records (Procrastinate's events, PgQueuer's log), so process start-up is not counted.
CPU per job is the worker's processes' CPU time, and that of the PostgreSQL backends
serving the bench database (this script's own excepted), between the moment the first
job starts and the moment the last one ends, over the jobs drained.
"""

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import procrastinate
import psutil
import psycopg

import tasks.app
from bench import bare_app, harness
from tests import processes

JOBS = 20_000
NOOP_CONCURRENCY = 10
IO_CONCURRENCY = 100
IO_SECONDS = 0.02
IO_ARGS = {"organization_id": 1, "seconds": IO_SECONDS}
BARE_WORKER = [harness.PYTHON, "-m", "procrastinate", "--app", "bench.bare_app.app", "worker"]
HOWDAH_WORKER = [harness.PYTHON, "-m", "tasks.worker"]


@dataclass(frozen=True)
class Records:
    """How to read a system's progress from its tables."""

    started: str  # whether any job has started
    remaining: str  # jobs not ended yet
    span: str  # first start, last end, jobs that succeeded


PROCRASTINATE = Records(
    started="SELECT EXISTS (SELECT 1 FROM procrastinate_events WHERE type = 'started')",
    remaining="SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')",
    span="SELECT min(at) FILTER (WHERE type = 'started'), max(at) FILTER (WHERE type ="
    " 'succeeded'), count(*) FILTER (WHERE type = 'succeeded') FROM procrastinate_events",
)
PGQUEUER = Records(
    started="SELECT EXISTS (SELECT 1 FROM pgqueuer_log WHERE status = 'picked')",
    remaining="SELECT count(*) FROM pgqueuer",
    span="SELECT min(created) FILTER (WHERE status = 'picked'), max(created) FILTER (WHERE"
    " status = 'successful'), count(*) FILTER (WHERE status = 'successful') FROM pgqueuer_log",
)


def fill(url: str, app: procrastinate.App, task_name: str, args: dict | None = None) -> None:
    """Defer JOBS jobs of ``task_name`` through ``app``, on its own connection."""
    connector = procrastinate.SyncPsycopgConnector(conninfo=url, min_size=1, max_size=1)
    with app.replace_connector(connector) as opened:
        opened.open()
        try:
            for _ in range(JOBS // 1000):
                opened.tasks[task_name].batch_defer(*[args or {"organization_id": 1}] * 1000)
        finally:
            opened.close()


def process_cpu(pid: int) -> float:
    """CPU seconds of a process and its children."""
    process = psutil.Process(pid)
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def backend_cpu(database: str, exclude: int) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving ``database``, but ``exclude``."""
    found = {}
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] != "postgres" or process.pid == exclude:
            continue
        if f" {database} " not in " ".join(process.info["cmdline"] or []):
            continue
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        found[process.pid] = times.user + times.system
    return found


def wait(check, worker, name: str, every: float) -> None:
    deadline = time.monotonic() + 600
    while not check():
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} stopped draining; see {harness.LOGS}")
        time.sleep(every)


def drain(
    url: str,
    command: list[str],
    name: str,
    cwd: Path = harness.ROOT,
    records: Records = PROCRASTINATE,
    **settings: str,
) -> dict:
    """Start the worker (from ``cwd``), wait until every job ran, stop it; the rate and
    the CPU per job of the worker and of PostgreSQL."""
    database = urlsplit(url).path.lstrip("/")
    worker = harness.start(command, url, name, cwd, **settings)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            me = conn.info.backend_pid
            wait(lambda: conn.execute(records.started).fetchone()[0], worker, name, 0.005)
            worker_before, postgres_before = process_cpu(worker.pid), backend_cpu(database, me)
            wait(lambda: not conn.execute(records.remaining).fetchone()[0], worker, name, 0.1)
            worker_used = process_cpu(worker.pid) - worker_before
            postgres_used = sum(
                seconds - postgres_before.get(pid, 0.0)
                for pid, seconds in backend_cpu(database, me).items()
            )
            first, last, done = conn.execute(records.span).fetchone()
    finally:
        processes.stop(worker, timeout=60)
    if done < JOBS:
        raise RuntimeError(f"{name}: only {done} of {JOBS} jobs succeeded")
    return {
        "per_second": done / (last - first).total_seconds(),
        "worker_cpu_us_per_job": worker_used / done * 1e6,
        "postgres_cpu_us_per_job": postgres_used / done * 1e6,
    }


def howdah(
    concurrency: int, task_name: str, args: dict | None = None, flags: tuple = (), **settings
) -> dict:
    """Howdah's worker, with no cap per organization unless ``settings`` set one."""
    with harness.fresh_database() as url:
        fill(url, tasks.app.app, task_name, args)
        return drain(
            url,
            [*HOWDAH_WORKER, *flags],
            "howdah-worker",
            WORKER_CONCURRENCY=str(concurrency),
            **{"ORG_MAX_RUNNING": "0", **settings},
        )


def bare(concurrency: int, task_name: str, args: dict) -> dict:
    """The stock Procrastinate worker, on Procrastinate's schema alone."""
    with harness.fresh_database(howdah=False) as url:
        fill(url, bare_app.app, task_name, args)
        return drain(url, [*BARE_WORKER, "--concurrency", str(concurrency)], "bare-worker")


def pgqueuer() -> dict:
    """PgQueuer's worker, on its own schema."""
    with harness.fresh_database(howdah=False) as url:
        side = [harness.PYTHON, "-m", "bench.pgqueuer_side"]
        for step in (["install"], ["fill", str(JOBS)]):
            subprocess.run([*side, *step], env=harness.env(url), cwd=harness.ROOT, check=True)
        return drain(url, [*side, "work"], "pgqueuer-worker", records=PGQUEUER)


def run() -> dict:
    """One side-by-side measurement."""
    from tasks.diagnostics import noop, sleep

    noop_jobs = {
        "howdah": howdah(NOOP_CONCURRENCY, noop.name),
        "howdah_capped": howdah(NOOP_CONCURRENCY, noop.name, ORG_MAX_RUNNING="1000"),
        "howdah_2_processes": howdah(NOOP_CONCURRENCY, noop.name, flags=("--processes", "2")),
        "bare": bare(NOOP_CONCURRENCY, bare_app.noop.name, {}),
        "pgqueuer": pgqueuer(),
    }
    io_jobs = {
        "howdah": howdah(IO_CONCURRENCY, sleep.name, IO_ARGS),
        "bare": bare(IO_CONCURRENCY, bare_app.sleep.name, {"seconds": IO_SECONDS}),
    }
    bare_rate = noop_jobs["bare"]["per_second"]
    return {
        "noop": noop_jobs,
        "io": io_jobs,
        "ratio": noop_jobs["howdah"]["per_second"] / bare_rate,
        "capped_ratio": noop_jobs["howdah_capped"]["per_second"] / bare_rate,
        "two_processes_ratio": noop_jobs["howdah_2_processes"]["per_second"] / bare_rate,
        "pgqueuer_ratio": noop_jobs["howdah"]["per_second"] / noop_jobs["pgqueuer"]["per_second"],
        "io_ratio": io_jobs["howdah"]["per_second"] / io_jobs["bare"]["per_second"],
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
