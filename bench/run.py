"""Run every benchmark RUNS times, side by side, and write bench/RESULTS.md.

.venv/bin/python -m bench.run            # 3 runs (about 10 minutes on 2 cores)
BENCH_RUNS=5 .venv/bin/python -m bench.run
BENCH_ADMIN_JOBS=10000000 .venv/bin/python -m bench.run   # the admin pages at 10M jobs

The admin pages' database is seeded once (30 to 70 s for 1,000,000 jobs here) and
dropped after the last run, unless BENCH_ADMIN_KEEP=1 keeps it for the next one.
GET /metrics is timed on a fresh database of as many jobs, filled by generate_series each
run.
"""

import datetime
import json
import os
from pathlib import Path

from bench import (
    bench_admin,
    bench_api,
    bench_batch,
    bench_fetch,
    bench_latency,
    bench_metrics,
    bench_worker,
    harness,
)

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
ADMIN_JOBS = int(os.environ.get("BENCH_ADMIN_JOBS", "1000000"))
KEEP_ADMIN_DATABASE = os.environ.get("BENCH_ADMIN_KEEP") == "1"
OUT = Path(__file__).resolve().parent


def medians(results: list[dict]) -> dict:
    """The median of every numeric field, descending into nested dicts."""
    first = results[0]
    merged = {}
    for key, value in first.items():
        # A key some runs lack (the admin seed's time, after the first run) is taken from
        # the runs that have it.
        values = [r[key] for r in results if key in r]
        if isinstance(value, dict):
            merged[key] = medians(values)
        elif isinstance(value, int | float):
            middle = harness.median(values)
            # Counts stay whole: the median of two even counts is one of them.
            merged[key] = (
                int(middle) if isinstance(value, int) and middle == int(middle) else middle
            )
        else:
            merged[key] = value
    return merged


def measure() -> dict:
    raw = {name: [] for name in ("api", "batch", "worker", "latency", "fetch", "admin", "metrics")}
    for run in range(RUNS):
        print(f"run {run + 1}/{RUNS}", flush=True)
        raw["api"].append(bench_api.run())
        raw["batch"].append(bench_batch.run())
        raw["worker"].append(bench_worker.run())
        raw["latency"].append(bench_latency.run())
        raw["fetch"].append(bench_fetch.run())
        print(
            json.dumps(
                {k: v[-1] for k, v in raw.items() if k not in ("admin", "metrics")}, indent=1
            )
        )
        last = run == RUNS - 1
        admin = bench_admin.run(ADMIN_JOBS, drop=last and not KEEP_ADMIN_DATABASE)
        if last:
            bench_admin.PLANS.write_text(bench_admin.plans_report(admin))
        raw["admin"].append(bench_admin.compact(admin))
        scrape = bench_metrics.run(ADMIN_JOBS)
        if last:
            bench_metrics.PLANS.write_text(bench_metrics.plans_report(scrape))
        raw["metrics"].append(bench_metrics.compact(scrape))
    return {"raw": raw, "median": {k: medians(v) for k, v in raw.items()}}


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def report(results: dict) -> str:
    m = results["median"]
    api, batch, worker, latency = m["api"], m["batch"], m["worker"], m["latency"]
    fetch = m["fetch"]
    noop, io = worker["noop"], worker["io"]
    rows = [
        (
            "API `POST /api/v1/jobs` (token auth), 8 clients",
            f"{api['api']['per_second']:,.0f} req/s, "
            f"p50 {api['api']['p50_ms']:.1f} ms, p99 {api['api']['p99_ms']:.1f} ms",
            f"bare `defer()`, one caller: {api['bare_defer_one_caller']['per_second']:,.0f}/s",
            f"{api['ratio_one_caller']:.0%}",
            "≥ 60 %, p99 ≤ 50 ms",
            verdict(api["ratio_one_caller"] >= 0.6 and api["api"]["p99_ms"] <= 50),
        ),
        (
            "the same, against bare `defer()` at the API's concurrency",
            "",
            f"bare `defer()`, 8 threads: {api['bare_defer_8_threads']['per_second']:,.0f}/s",
            f"{api['ratio_8_threads']:.0%}",
            "≥ 60 %",
            verdict(api["ratio_8_threads"] >= 0.6),
        ),
        (
            "`POST /api/v1/jobs/batch`, 1,000 per request",
            f"{batch['api_batch_per_second']:,.0f} jobs/s",
            f"bare `batch_defer`: {batch['bare_batch_defer_per_second']:,.0f} jobs/s",
            f"{batch['ratio']:.0%}",
            "≥ 70 %",
            verdict(batch["ratio"] >= 0.7),
        ),
        (
            "worker drain, 20,000 no-op jobs, concurrency 10",
            f"{noop['howdah']['per_second']:,.0f} jobs/s",
            f"stock Procrastinate worker: {noop['bare']['per_second']:,.0f} jobs/s",
            f"{worker['ratio']:.0%}",
            "≥ 300 %",
            verdict(worker["ratio"] >= 3),
        ),
        (
            "the same with a cap per organization that never binds (`ORG_MAX_RUNNING=1000`)",
            f"{noop['howdah_capped']['per_second']:,.0f} jobs/s",
            f"stock Procrastinate worker: {noop['bare']['per_second']:,.0f} jobs/s",
            f"{worker['capped_ratio']:.0%}",
            "≥ 300 %",
            verdict(worker["capped_ratio"] >= 3),
        ),
        (
            "the same as `--processes 2` (10 slots each)",
            f"{noop['howdah_2_processes']['per_second']:,.0f} jobs/s",
            f"stock Procrastinate worker: {noop['bare']['per_second']:,.0f} jobs/s",
            f"{worker['two_processes_ratio']:.0%}",
            "",
            "",
        ),
        (
            "the same no-op jobs, beside PgQueuer (asyncpg, batches of 10)",
            f"{noop['howdah']['per_second']:,.0f} jobs/s",
            f"PgQueuer: {noop['pgqueuer']['per_second']:,.0f} jobs/s",
            f"{worker['pgqueuer_ratio']:.0%}",
            "the row to beat next",
            "",
        ),
        (
            f"worker drain, 20,000 jobs that await {bench_worker.IO_SECONDS * 1000:.0f} ms,"
            f" concurrency {bench_worker.IO_CONCURRENCY}",
            f"{io['howdah']['per_second']:,.0f} jobs/s",
            f"stock Procrastinate worker: {io['bare']['per_second']:,.0f} jobs/s",
            f"{worker['io_ratio']:.0%}",
            "≥ 300 %",
            verdict(worker["io_ratio"] >= 3),
        ),
        (
            "one fetch of 10 jobs: a 100,000-job flood at its cap and 300,000 jobs of 20,000"
            " organizations scheduled for next year ahead of 2,000 other jobs",
            f"{fetch['capped_flood_ms']:.1f} ms (no cap, no flood in the way:"
            f" {fetch['uncapped_ms']:.1f} ms; one queue only, no cap:"
            f" {fetch['some_queues_ms']:.1f} ms)",
            "`procrastinate_fetch_job_v2` ten times:"
            f" {fetch['procrastinate_10_fetches_ms']:.1f} ms",
            f"{fetch['capped_flood_ms'] / fetch['procrastinate_10_fetches_ms']:.0%}",
            "≤ 10 ms",
            verdict(max(fetch["capped_flood_ms"], fetch["some_queues_ms"]) <= 10),
        ),
        (
            "defer → start (LISTEN/NOTIFY)",
            f"p50 {latency['defer_to_start_p50_ms']:.1f} ms, "
            f"p99 {latency['defer_to_start_p99_ms']:.1f} ms",
            "",
            "",
            "p50 ≤ 20 ms",
            verdict(latency["defer_to_start_p50_ms"] <= 20),
        ),
        (
            "retry pickup after it is due",
            f"p50 {latency['retry_pickup_p50_ms']:.0f} ms, "
            f"p99 {latency['retry_pickup_p99_ms']:.0f} ms, max {latency['retry_pickup_max_ms']:.0f}"
            " ms",
            "Procrastinate's default poll: up to 5,000 ms",
            "",
            "≤ 1 s",
            verdict(latency["retry_pickup_max_ms"] <= 1000),
        ),
    ]
    lines = [
        "# Benchmark results",
        "",
        f"- Date: {datetime.date.today().isoformat()}",
        f"- Machine: {harness.machine()}",
        f"- Medians of {RUNS} runs of `python -m bench.run`. Within a run Howdah and bare "
        "Procrastinate are measured side by side (the API in alternating segments on one "
        "database; the others one after the other on fresh databases, the bare side's "
        "with Procrastinate's schema alone), so ratios compare like with like on this "
        "shared machine.",
        "",
        "| what | Howdah | beside it | ratio | target | |",
        "|---|---|---|---|---|---|",
        *[f"| {' | '.join(row)} |" for row in rows],
        "",
        "CPU per job while draining (the worker's processes, and the PostgreSQL backends"
        " serving its database), in microseconds:",
        "",
        "| drain | worker | PostgreSQL |",
        "|---|---|---|",
        *[
            f"| {label} | {side['worker_cpu_us_per_job']:,.0f} |"
            f" {side['postgres_cpu_us_per_job']:,.0f} |"
            for label, side in (
                ("Howdah, no-op jobs", noop["howdah"]),
                ("Howdah, no-op jobs, cap that never binds", noop["howdah_capped"]),
                ("Howdah, no-op jobs, 2 processes", noop["howdah_2_processes"]),
                ("stock Procrastinate, no-op jobs", noop["bare"]),
                ("PgQueuer, no-op jobs", noop["pgqueuer"]),
                ("Howdah, 20 ms jobs", io["howdah"]),
                ("stock Procrastinate, 20 ms jobs", io["bare"]),
            )
        ],
        "",
        "Every run's numbers: `bench/results.json`.",
        "",
        bench_admin.report(m["admin"]),
        "",
        bench_metrics.report(m["metrics"]),
    ]
    return "\n".join(lines)


def main() -> None:
    results = measure()
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    text = report(results)
    marker = "<!-- notes -->"
    existing = (OUT / "RESULTS.md").read_text() if (OUT / "RESULTS.md").exists() else ""
    notes = existing[existing.index(marker) :] if marker in existing else f"{marker}\n"
    (OUT / "RESULTS.md").write_text(text + "\n" + notes)
    print(text)


if __name__ == "__main__":
    main()
