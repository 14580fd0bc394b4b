"""What a rollup the admin pages read costs the worker: its drain rate with the rollup on
and off, side by side. Target: less than 5 % of the drain rate.

.venv/bin/python -m bench.bench_rollup --on ROLLUP=on --off ROLLUP=off
.venv/bin/python -m bench.bench_rollup --revisions main admin-rollup
.venv/bin/python -m bench.bench_rollup --revisions HEAD~1 HEAD --runs 5

No switch for the rollup existed when this was written, so the two sides are given on the
command line, either as settings (environment names and values given to the worker: the
same code, with the rollup switched by a setting) or as two git revisions (the code and
migrations before and after the rollup: each side's database is migrated and its worker
runs from an export of its revision, made with ``git archive`` into a temporary folder).

Each run drains bench/bench_worker.py's 20,000 no-op jobs with Howdah's worker at
concurrency 10 on a fresh database, once per side, the order alternating from one run to
the next so that drift on this shared machine hits both sides alike; the rate comes from
Procrastinate's events, as in bench_worker.py. The cost is 1 - median(on) / median(off).
A 5 % difference is within the noise of one run on a busy machine (an A/A run, the same
revision on both sides, once differed by 18 % here while other work shared the cores):
use several runs on a quiet machine, and read the spread printed beside the medians.
"""

import argparse
import contextlib
import io
import json
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import tasks.app
from bench import bench_worker, harness

TARGET = 0.05
RUNS = 3
MIGRATE = (
    "import sys, psycopg; from webapp import migrations;"
    " migrations.migrate(psycopg.connect(sys.argv[1], autocommit=True))"
)


@dataclass
class Side:
    """One side of the comparison: its settings and the code it runs."""

    label: str
    settings: dict[str, str] = field(default_factory=dict)
    root: Path = harness.ROOT
    rates: list[float] = field(default_factory=list)


def parse_settings(pairs: list[str]) -> dict[str, str]:
    """NAME=value pairs as a dict."""
    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"{pair!r}: settings are NAME=value")
        settings[name] = value
    return settings


@contextlib.contextmanager
def exported(revision: str):
    """The files of a git revision, in a temporary folder (the repository is untouched)."""
    with tempfile.TemporaryDirectory(prefix="howdah-rev-") as folder:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", revision],
            cwd=harness.ROOT,
            check=True,
            capture_output=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
        yield Path(folder)


@contextlib.contextmanager
def side_database(side: Side):
    """A fresh database migrated by the side's own code, dropped afterwards."""
    url = harness.SERVER.create_database()
    try:
        subprocess.run(
            [harness.PYTHON, "-c", MIGRATE, url],
            cwd=side.root,
            env=harness.env(url),
            check=True,
            capture_output=True,
        )
        yield url
    finally:
        harness.SERVER.drop_database(url)


def drain_once(side: Side, run: int) -> float:
    """Fill a fresh database with the no-op jobs and drain it with the side's worker."""
    from tasks.diagnostics import noop

    with side_database(side) as url:
        bench_worker.fill(url, tasks.app.app, noop.name)
        command = [harness.PYTHON, "-m", "tasks.worker"]
        settings = {"WORKER_CONCURRENCY": str(bench_worker.NOOP_CONCURRENCY), **side.settings}
        drained = bench_worker.drain(
            url, command, f"rollup-{side.label}-{run}", side.root, **settings
        )
        return drained["per_second"]


def compare(on: Side, off: Side, runs: int = RUNS, log=print) -> dict:
    """Drain with each side ``runs`` times, alternating which goes first."""
    for run in range(runs):
        order = (on, off) if run % 2 == 0 else (off, on)
        for side in order:
            side.rates.append(drain_once(side, run))
            log(f"run {run + 1}/{runs}: rollup {side.label}: {side.rates[-1]:,.0f} jobs/s")
    on_rate, off_rate = harness.median(on.rates), harness.median(off.rates)
    cost = 1 - on_rate / off_rate
    return {
        "on_per_second": on_rate,
        "off_per_second": off_rate,
        "cost": cost,
        "met": cost < TARGET,
        "on_runs": on.rates,
        "off_runs": off.rates,
        "on": on.settings or str(on.root),
        "off": off.settings or str(off.root),
    }


def report(result: dict, how: str) -> str:
    """A RESULTS.md row for the rollup's cost."""
    verdict = "met" if result["met"] else "**missed**"
    spread = f"{min(result['on_runs']):,.0f}-{max(result['on_runs']):,.0f}"
    spread_off = f"{min(result['off_runs']):,.0f}-{max(result['off_runs']):,.0f}"
    return (
        f"| worker drain with the rollup ({how}), 20,000 no-op jobs, concurrency 10"
        f" | {result['on_per_second']:,.0f} jobs/s (runs {spread})"
        f" | without it: {result['off_per_second']:,.0f} jobs/s (runs {spread_off})"
        f" | cost {result['cost']:.1%} | < 5 % | {verdict} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--on", nargs="*", default=[], metavar="NAME=value")
    parser.add_argument("--off", nargs="*", default=[], metavar="NAME=value")
    parser.add_argument("--revisions", nargs=2, metavar=("WITHOUT", "WITH"))
    parser.add_argument("--runs", type=int, default=RUNS)
    options = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if options.revisions:
            without, with_ = options.revisions
            off = Side("off", root=stack.enter_context(exported(without)))
            on = Side("on", root=stack.enter_context(exported(with_)))
            how = f"`{with_}` against `{without}`"
        elif options.on or options.off:
            on = Side("on", parse_settings(options.on))
            off = Side("off", parse_settings(options.off))
            on_text, off_text = " ".join(options.on), " ".join(options.off)
            how = f"{on_text or 'defaults'} against {off_text or 'defaults'}"
        else:
            parser.error("give --on/--off settings or --revisions WITHOUT WITH")
        result = compare(on, off, options.runs)
    print(json.dumps(result, indent=2))
    print(report(result, how))


if __name__ == "__main__":
    main()
