"""Drain 20,000 no-op jobs with ``--processes 1`` and ``--processes 2`` at the same total
concurrency: 1 x 10 beside 2 x 5, and 1 x 20 beside 2 x 10.

Each drain is ``bench_worker.howdah``: a fresh migrated database, no cap per
organization, the rate from the first job's start to the last job's end, and the CPU per
job of the worker's processes (the parent and its children) and of PostgreSQL's
backends over that span. The variants take turns in each round, so the machine's noise
hits them alike; the results are the medians of the rounds.

.venv/bin/python -m bench.bench_processes             # 3 rounds, JSON out
.venv/bin/python -m bench.bench_processes --rounds 5
"""

import argparse
import json

from bench import bench_worker, harness

# name: (processes, concurrency of each)
VARIANTS = {
    "one_process_concurrency_10": (1, 10),
    "two_processes_concurrency_5": (2, 5),
    "one_process_concurrency_20": (1, 20),
    "two_processes_concurrency_10": (2, 10),
}
FIGURES = ("per_second", "worker_cpu_us_per_job", "postgres_cpu_us_per_job")


def run(rounds: int) -> dict:
    """Every variant once per round; the medians, the ratios and every round's figures."""
    from tasks.diagnostics import noop

    results = {name: [] for name in VARIANTS}
    for round_ in range(rounds):
        for name, (processes, concurrency) in VARIANTS.items():
            flags = ("--processes", str(processes))
            results[name].append(bench_worker.howdah(concurrency, noop.name, flags=flags))
        print(f"round {round_ + 1}/{rounds}: {json.dumps(results)}", flush=True)
    medians = {
        name: {figure: harness.median([r[figure] for r in runs]) for figure in FIGURES}
        for name, runs in results.items()
    }
    rate = {name: figures["per_second"] for name, figures in medians.items()}
    return {
        **medians,
        "two_processes_ratio_at_10": rate["two_processes_concurrency_5"]
        / rate["one_process_concurrency_10"],
        "two_processes_ratio_at_20": rate["two_processes_concurrency_10"]
        / rate["one_process_concurrency_20"],
        "rounds": results,
        "machine": harness.machine(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    print(json.dumps(run(parser.parse_args().rounds), indent=2))
