"""What a Prometheus scrape of GET /metrics costs at 1,000,000 jobs, beside GET /readyz and
the API's job list on the same database, and the plans of the statements it runs.

.venv/bin/python -m bench.bench_metrics                  # 1,000,000 jobs, 50 scrapes
.venv/bin/python -m bench.bench_metrics --jobs 100000 --requests 20
.venv/bin/python -m bench.bench_metrics --write          # and update RESULTS.md

A fresh database is filled by generate_series INSERTs (triggers off, as a restore would
run): jobs across four queues, every state and 50 organizations, one ``deferred`` event
each, and SMS message records. The rollups are then brought up the way the worker and
housekeeping would: attempts go in through the worker's own statement
(``webapp.store.attempts.insert_attempts``, 1,000 a batch, under several worker names),
part of them folded by housekeeping's statement, and finished jobs are counted by its
``count_finished_jobs``.

The app runs in this process behind Flask's test client, as in bench_admin.py: the time
of a request is the server's, with no network. Each endpoint is requested WARMUPS times,
then REQUESTS times, timed; one more scrape records its SQL, and each statement is run
again under EXPLAIN ANALYZE (bench/metrics_plans.md). A sequential scan of
procrastinate_jobs, procrastinate_events or job_attempts fails the run.
"""

import argparse
import asyncio
import datetime
import json
import time

import psycopg

from bench import bench_admin, harness
from webapp import create_app
from webapp import db as webapp_db
from webapp.store import attempts as attempts_store
from webapp.store import maintenance as maintenance_store

JOBS = 1_000_000
WARMUPS = 5
REQUESTS = 50
ORGANIZATIONS = 50
ATTEMPT_BATCHES = 100
SMS_SHARE = 0.2  # SMS message records per job
TARGET_P99_MS = 50.0
PLANS = bench_admin.OUT / "metrics_plans.md"
TASKS = ("sms:send_notification", "email:send_digest", "diagnostics:noop", "diagnostics:sleep")

SEED_JOBS = """
    INSERT INTO procrastinate_jobs
        (queue_name, task_name, args, status, scheduled_at, attempts, worker_id)
    SELECT (ARRAY['sms-notifications', 'email-digests', 'default', 'housekeeping'])[1 + g %% 4],
           (%(tasks)s::text[])[1 + g %% 4],
           jsonb_build_object('organization_id', 1 + g %% %(orgs)s),
           CASE WHEN g %% 100 < 90 THEN 'succeeded' WHEN g %% 100 < 94 THEN 'failed'
                WHEN g %% 100 < 95 THEN 'cancelled' WHEN g %% 100 < 96 THEN 'aborted'
                WHEN g %% 1000 = 999 THEN 'doing' ELSE 'todo' END::procrastinate_job_status,
           CASE WHEN g %% 100 = 98 THEN now() + interval '1 day' END,
           1, NULL
    FROM generate_series(1, %(jobs)s) AS g
"""
SEED_EVENTS = """
    INSERT INTO procrastinate_events (job_id, type, at)
    SELECT id, 'deferred', now() - make_interval(secs => (%(jobs)s - id) * 0.5)
    FROM procrastinate_jobs
"""
SEED_SMS = """
    INSERT INTO sms_messages (organization_id, job_id, provider, to_number, segments, status)
    SELECT 1 + g %% %(orgs)s, g, 'console', '+14155550123', 1,
           (ARRAY['delivered', 'delivered', 'delivered', 'sent', 'failed', 'logged'])[1 + g %% 6]
    FROM generate_series(1, %(messages)s) AS g
"""


def seed(url: str, jobs: int, log=print) -> dict:
    """Fill the database and bring its rollups up; seconds each step took."""
    took = {}
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO organizations (name) SELECT 'Org ' || g FROM generate_series(1, %s) AS g",
            (ORGANIZATIONS,),
        )
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")  # no triggers
            params = {"jobs": jobs, "orgs": ORGANIZATIONS, "tasks": list(TASKS)}
            conn.execute(SEED_JOBS, params)
            conn.execute(SEED_EVENTS, params)
        messages = int(jobs * SMS_SHARE)
        conn.execute(SEED_SMS, {"orgs": ORGANIZATIONS, "messages": messages})
        for _ in range(4):
            conn.execute("SELECT procrastinate_register_worker_v1()")
        conn.execute("VACUUM ANALYZE")
    took["insert_s"] = round(time.perf_counter() - started, 1)
    log(f"  {jobs:,} jobs and {messages:,} SMS records in {took['insert_s']} s")
    started = time.perf_counter()
    asyncio.run(bring_up_rollups(url))
    took["rollups_s"] = round(time.perf_counter() - started, 1)
    log(f"  rollups in {took['rollups_s']} s")
    return took


def attempt_rows(batch: int) -> list[tuple]:
    """1,000 attempt rows in the worker's column order, with varied durations."""
    now = datetime.datetime.now(datetime.UTC)
    rows = []
    for n in range(1000):
        seconds = (n % 97) * 0.013 * (1 + n % 7)
        outcome = "failed" if n % 25 == 0 else "succeeded"
        started = now - datetime.timedelta(seconds=seconds)
        rows.append(
            (batch * 1000 + n, 1, f"bench-worker-{batch % 8}", outcome, started, now)
            + ((None,) * 5)
            + (TASKS[n % len(TASKS)], "default", 1 + n % ORGANIZATIONS)
        )
    return rows


async def bring_up_rollups(url: str) -> None:
    """Attempts through the worker's statement (half of them in hours housekeeping has
    folded since), and finished jobs counted by housekeeping."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for batch in range(ATTEMPT_BATCHES):
            await attempts_store.insert_attempts(conn, attempt_rows(batch))
            if batch == ATTEMPT_BATCHES // 2:
                await conn.execute("UPDATE attempt_counts SET hour = hour - interval '1 day'")
                await maintenance_store.fold_attempt_counts(conn)
        await maintenance_store.count_finished_jobs(conn)
        await conn.execute("ANALYZE")


def check(path: str, response) -> None:
    if response.status_code != 200:
        raise RuntimeError(f"{path} answered {response.status_code}")


def time_path(client, path: str, warmups: int, requests: int, headers=None) -> dict:
    """p50 and p99 of the server time of ``path``, after warm-ups."""
    for _ in range(warmups):
        check(path, client.get(path, headers=headers))
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        check(path, response)
    return {
        "p50_ms": round(harness.percentile(times, 0.5), 2),
        "p99_ms": round(harness.percentile(times, 0.99), 2),
        "max_ms": round(max(times), 2),
    }


def measure(url: str, warmups: int, requests: int) -> dict:
    """Time the scrape and the baselines; record and explain the scrape's statements."""
    token = harness.api_token(url)
    with bench_admin.recording_pool():
        app = create_app(
            {
                "DATABASE_URL": url,
                "SECRET_KEY": harness.SECRET,
                "LOG_LEVEL": "ERROR",
                "METRICS_ALLOW_FROM": "127.0.0.1/32",
            }
        )
        try:
            client = app.test_client()
            result = {
                "metrics": time_path(client, "/metrics", warmups, requests),
                "readyz": time_path(client, "/readyz", warmups, requests),
                "job_list": time_path(
                    client,
                    "/api/v1/jobs?limit=50",
                    warmups,
                    requests,
                    {"Authorization": f"Bearer {token}"},
                ),
            }
            with bench_admin.RECORDER.capture() as statements:
                body = client.get("/metrics").get_data(as_text=True)
        finally:
            webapp_db.get_db(app).close()
    result["series"] = sum(1 for line in body.splitlines() if line and line[0] != "#")
    result["plans"] = bench_admin.explain(url, statements)
    result["seq_scans"] = sorted({t for plan in result["plans"] for t in plan.get("seq_scans", ())})
    result["ratio_to_readyz"] = round(result["metrics"]["p50_ms"] / result["readyz"]["p50_ms"], 2)
    result["ratio_to_job_list"] = round(
        result["metrics"]["p50_ms"] / result["job_list"]["p50_ms"], 2
    )
    return result


def run(jobs: int = JOBS, warmups: int = WARMUPS, requests: int = REQUESTS, log=print) -> dict:
    """Seed a fresh database, measure, drop it."""
    with harness.fresh_database() as url:
        took = seed(url, jobs, log)
        result = measure(url, warmups, requests)
    return {"jobs": jobs, "warmups": warmups, "requests": requests, **took, **result}


def compact(result: dict) -> dict:
    """The result without its plans (for results.json)."""
    return {key: value for key, value in result.items() if key != "plans"}


def report(result: dict, machine: str | None = None) -> str:
    """The RESULTS.md section."""
    m, r, j = result["metrics"], result["readyz"], result["job_list"]
    ok = m["p99_ms"] <= TARGET_P99_MS and not result["seq_scans"]
    return "\n".join(
        [
            f"## GET /metrics at {result['jobs']:,} jobs",
            "",
            f"- Date: {datetime.date.today().isoformat()}",
            f"- Machine: {machine or harness.machine()}",
            "- `python -m bench.bench_metrics`: server time through Flask's test client,"
            f" {result['requests']} requests of each after {result['warmups']} warm-ups, on"
            " one fresh database;"
            f" the scrape answers {result['series']} series. Plans: `bench/metrics_plans.md`.",
            "",
            "| request | p50 | p99 | max |",
            "|---|---|---|---|",
            *[
                f"| {label} | {t['p50_ms']:.1f} ms | {t['p99_ms']:.1f} ms | {t['max_ms']:.1f} ms |"
                for label, t in (
                    ("`GET /metrics`", m),
                    ("`GET /readyz`", r),
                    ("`GET /api/v1/jobs?limit=50` (a token)", j),
                )
            ],
            "",
            f"A scrape's p50 is {result['ratio_to_readyz']:.1f}x that of `/readyz` and"
            f" {result['ratio_to_job_list']:.1f}x that of the job list. Target: p99 ≤"
            f" {TARGET_P99_MS:.0f} ms and no sequential scan of the jobs, events or attempts"
            f" table: {'met' if ok else '**missed**'}"
            + (f" (Seq Scan on {', '.join(result['seq_scans'])})" if result["seq_scans"] else "")
            + ".",
            "",
        ]
    )


def plans_report(result: dict) -> str:
    lines = [
        f"# Plans of GET /metrics at {result['jobs']:,} jobs",
        "",
        "Written by `python -m bench.bench_metrics --write`: each statement one scrape runs,"
        " under EXPLAIN (ANALYZE, BUFFERS).",
        "",
    ]
    for number, plan in enumerate(result["plans"], 1):
        lines += bench_admin.plan_lines(number, plan)
    return "\n".join(lines) + "\n"


def write_results(section: str) -> None:
    """Put the section into RESULTS.md, in place of the last one, before the notes."""
    path = bench_admin.OUT / "RESULTS.md"
    marker = "<!-- notes -->"
    text = path.read_text() if path.exists() else ""
    head, _, notes = text.partition(marker)
    start = head.find("## GET /metrics at ")
    if start >= 0:
        end = head.find("\n## ", start + 1)
        head = head[:start] + (head[end + 1 :] if end >= 0 else "")
    path.write_text(head.rstrip("\n") + "\n\n" + section + "\n" + marker + notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--write", action="store_true", help="update RESULTS.md and the plans")
    args = parser.parse_args()
    result = run(args.jobs, requests=args.requests)
    print(json.dumps(compact(result), indent=1))
    section = report(result)
    print(section)
    if args.write:
        write_results(section)
        PLANS.write_text(plans_report(result))


if __name__ == "__main__":
    main()
