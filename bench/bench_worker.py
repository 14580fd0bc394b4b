"""Drain 20,000 no-op jobs with Howdah's worker, beside a bare Procrastinate worker.

All run with concurrency 10 on fresh databases: Howdah's with its migrations, the bare
worker's with Procrastinate's schema alone, as it would be without Howdah. (On Howdah's
schema, Procrastinate's fetch can plan a bitmap scan over Howdah's partial indexes and
sort every waiting job, which makes the bare worker several times slower there.)
Howdah's worker runs twice: with no
cap per organization (like for like), and with a cap that never binds
(ORG_MAX_RUNNING=1000), which prices the cap check and its advisory lock. The rate
is measured between the first job's start and the last job's end, from
Procrastinate's own events, so process start-up is not counted.
"""

import json
import time
from pathlib import Path

import procrastinate
import psycopg

import tasks.app
from bench import bare_app, harness
from tests import processes

JOBS = 20_000
CONCURRENCY = "10"


def fill(url: str, app: procrastinate.App, task_name: str) -> None:
    """Defer JOBS no-op jobs of ``task_name`` through ``app``, on its own connection."""
    connector = procrastinate.SyncPsycopgConnector(conninfo=url, min_size=1, max_size=1)
    with app.replace_connector(connector) as opened:
        opened.open()
        try:
            for _ in range(JOBS // 1000):
                opened.tasks[task_name].batch_defer(*[{"organization_id": 1}] * 1000)
        finally:
            opened.close()


def drain(
    url: str, command: list[str], name: str, cwd: Path = harness.ROOT, **settings: str
) -> float:
    """Start the worker (from ``cwd``), wait until every job ran, stop it; jobs per second."""
    worker = harness.start(command, url, name, cwd, WORKER_CONCURRENCY=CONCURRENCY, **settings)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            deadline = time.monotonic() + 600
            while conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
            ).fetchone()[0]:
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} stopped draining; see {harness.LOGS}")
                time.sleep(0.2)
            first, last = conn.execute(
                "SELECT min(at) FILTER (WHERE type = 'started'),"
                " max(at) FILTER (WHERE type = 'succeeded') FROM procrastinate_events"
            ).fetchone()
            done = conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
            ).fetchone()[0]
    finally:
        processes.stop(worker, timeout=60)
    if done < JOBS:
        raise RuntimeError(f"{name}: only {done} of {JOBS} jobs succeeded")
    return done / (last - first).total_seconds()


def run() -> dict:
    """One side-by-side measurement."""
    from tasks.diagnostics import noop

    ours = {}
    for label, cap in (("uncapped", "0"), ("capped", "1000")):
        with harness.fresh_database() as url:
            fill(url, tasks.app.app, noop.name)
            command = [harness.PYTHON, "-m", "tasks.worker"]
            ours[label] = drain(url, command, f"howdah-worker-{label}", ORG_MAX_RUNNING=cap)
    with harness.fresh_database(howdah=False) as url:
        fill(url, bare_app.app, bare_app.noop.name)
        theirs = drain(
            url,
            [
                harness.PYTHON,
                "-m",
                "procrastinate",
                "--app",
                "bench.bare_app.app",
                "worker",
                "--concurrency",
                CONCURRENCY,
            ],
            "bare-worker",
        )
    return {
        "howdah_worker_per_second": ours["uncapped"],
        "howdah_worker_capped_per_second": ours["capped"],
        "bare_worker_per_second": theirs,
        "ratio": ours["uncapped"] / theirs,
        "capped_ratio": ours["capped"] / theirs,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
