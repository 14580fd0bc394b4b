"""One fetch of 10 jobs beside a noisy tenant's backlog, and Procrastinate's fetch beside it.

A noisy tenant (organization 1) has 100,000 jobs waiting at priority 100 and is at
its cap of running jobs; 20,000 organizations have 300,000 jobs at priority 100
scheduled for next year; 50 other organizations have 2,000 jobs waiting behind them.
Each fetch runs in a transaction that is rolled back, so every one sees the same
rows. Beside it: Howdah's fetch with no cap, for one queue only (which walks the
groups too), and Procrastinate's
``procrastinate_fetch_job_v2`` called 10 times (it knows no caps, so the flood's jobs
are the ones it takes; it does walk past the scheduled ones).
"""

import json
import statistics
import time

import psycopg

from bench import harness

FLOOD = 100_000
SCHEDULED = 300_000
OTHERS = 2_000
ROUNDS = 200
BATCH = 10


def fill(conn: psycopg.Connection) -> int:
    """The flood, the scheduled backlog, the other tenants' jobs, one of the flood's jobs
    running; the worker id."""
    conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, priority, args)"
        " SELECT 'default', 'diagnostics:noop', 100, '{\"organization_id\": 1}'"
        " FROM generate_series(1, %s)",
        (FLOOD,),
    )
    conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, priority, args, scheduled_at)"
        " SELECT 'sms-notifications', 'sms:send_notification', 100,"
        " jsonb_build_object('organization_id', 1000 + n %% 20000), now() + interval '300 days'"
        " FROM generate_series(1, %s) AS n",
        (SCHEDULED,),
    )
    conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, priority, args)"
        " SELECT (ARRAY['default', 'sms-notifications'])[1 + n %% 2], 'diagnostics:noop', 0,"
        " jsonb_build_object('organization_id', 2 + n %% 50) FROM generate_series(1, %s) n",
        (OTHERS,),
    )
    conn.execute(
        "UPDATE procrastinate_jobs SET status = 'doing'"
        " WHERE id = (SELECT min(id) FROM procrastinate_jobs)"
    )
    conn.execute("ANALYZE procrastinate_jobs")
    return conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()[0]


def timed(conn: psycopg.Connection, statement: str, params: tuple, calls: int = 1) -> float:
    """Median milliseconds of ``calls`` runs of ``statement`` in a rolled-back transaction."""
    samples = []
    for _ in range(ROUNDS):
        with conn.transaction(force_rollback=True):
            began = time.perf_counter()
            for _ in range(calls):
                conn.execute(statement, params).fetchall()
            samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples)


def run() -> dict:
    with harness.fresh_database() as url, psycopg.connect(url, autocommit=True) as conn:
        worker = fill(conn)
        ours = "SELECT id FROM howdah_fetch_jobs(NULL, %s, %s, %s)"
        capped = timed(conn, ours, (worker, BATCH, 1))
        uncapped = timed(conn, ours, (worker, BATCH, None))
        some_queues = timed(
            conn,
            "SELECT id FROM howdah_fetch_jobs(ARRAY['default']::varchar[], %s, %s, NULL)",
            (worker, BATCH),
        )
        theirs = timed(
            conn, "SELECT id FROM procrastinate_fetch_job_v2(NULL, %s)", (worker,), calls=BATCH
        )
    return {
        "capped_flood_ms": capped,
        "uncapped_ms": uncapped,
        "some_queues_ms": some_queues,
        "procrastinate_10_fetches_ms": theirs,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
