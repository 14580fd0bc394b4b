"""Seed a migrated database with a million jobs for the admin pages' benchmark, with COPY.

.venv/bin/python -m bench.seed_admin --database-url postgresql://postgres@127.0.0.1/x
.venv/bin/python -m bench.seed_admin --jobs 5000 --database-url ...

What it writes, as a week of a busy service would leave it:

- 50 organizations; a few noisy tenants hold most jobs (Zipf weights: organization 1
  about a quarter of them, the first three about half).
- 20 task names across the queues of tasks/queues.py; housekeeping runs (no
  organization) every 10 s and every 10 min over the last day, with their
  ``procrastinate_periodic_defers`` rows.
- States: about 87 % succeeded, 5 % failed, 2 % cancelled, 0.5 % aborted, 5 % waiting
  (a third of them scheduled for later, a tenth retries now due) and 0.2 % running on
  live workers. Ids grow with time: finished jobs spread over the last 7 days, the
  waiting and running ones are the newest (deferred in the last 2 hours).
- Priorities, locks and queueing locks (``org:N:<key>``); waiting jobs held behind the
  lock of a running job.
- ``procrastinate_events`` as Procrastinate's triggers write them (deferred, scheduled,
  started, deferred_for_retry, abort_requested, and the final event), and a
  ``job_attempts`` row for every run that ended (worker, times, outcome; error class,
  message and traceback for failures, with a handful of messages that differ only in
  their numbers, as the failures page groups them).
- Live workers in ``procrastinate_workers`` and ``worker_registry`` (two of them stale,
  and some that stopped), with the jobs they run; some audit entries.

Speed: the big tables are written with COPY, the jobs and their events at once on two
connections, so that both the generator and the server stay busy. Procrastinate's
triggers on ``procrastinate_jobs`` would write events and send a NOTIFY for every
waiting row, so those two sessions run with ``SET session_replication_role = replica``
(a superuser setting, for these sessions only): triggers and foreign-key checks are off,
and the events are written here instead. The attempts are spooled to a file meanwhile
and copied afterwards with triggers on: Howdah's own triggers on
``job_attempts`` (rollups the pages read) fire as the worker's writes would fire them.
Any trigger of Howdah's on the two Procrastinate tables did not fire, and the seed says
so. ANALYZE runs at the end.

A seeded database says so in its comment (``COMMENT ON DATABASE``), with the number of
jobs; seeding the same number again is skipped, so repeated runs start at once.
"""

import argparse
import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import os
import tempfile
import time

import psycopg
from psycopg import sql

from bench.seed_data import ORGANIZATIONS, WORKER_NAMES, Counts, Seeder, Writer
from tasks import queues
from webapp.store import maintenance as maintenance_store

SEED_VERSION = 1
MARK = "howdah admin bench seed "
LIVE_WORKERS = 10
STALE_WORKERS = 2
WORKER_CONCURRENCY = 200
JOB_COLUMNS = (
    "id, queue_name, task_name, priority, lock, queueing_lock, args, status, scheduled_at,"
    " attempts, abort_requested, worker_id"
)
EVENT_COLUMNS = "id, job_id, type, at"
ATTEMPT_COLUMNS = (
    "job_id, attempt, worker_name, outcome, started_at, finished_at, error_class,"
    " error_message, traceback, result_summary, retry_at"
)


def seed_mark(conn: psycopg.Connection) -> dict:
    """What this database was seeded with (from its comment): jobs and seconds, or {}."""
    comment = conn.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
        " WHERE datname = current_database()"
    ).fetchone()[0]
    if not comment or not comment.startswith(MARK):
        return {}
    mark = json.loads(comment[len(MARK) :])
    return mark if mark.get("version") == SEED_VERSION else {}


def mark_seeded(conn: psycopg.Connection, jobs: int, seconds: float) -> None:
    """Note in the database's comment that it holds this seed."""
    mark = json.dumps({"jobs": jobs, "version": SEED_VERSION, "seconds": round(seconds, 1)})
    conn.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(conn.info.dbname), sql.Literal(MARK + mark)
        )
    )


def replica_session(url: str) -> psycopg.Connection:
    """A connection whose writes fire no trigger and check no foreign key (superuser)."""
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SET session_replication_role = replica")
    conn.execute("SET synchronous_commit = off")
    return conn


def organizations_and_workers(conn: psycopg.Connection, seeder: Seeder) -> None:
    """The organizations, workers and registry rows the jobs refer to."""
    conn.execute(
        "INSERT INTO organizations (name, created_at) SELECT 'Tenant ' || n,"
        " now() - interval '90 days' + n * interval '1 day' FROM generate_series(1, %s) n",
        (ORGANIZATIONS,),
    )
    live = new_workers(conn, LIVE_WORKERS, "now() - random() * interval '5 s'")
    stale = new_workers(conn, STALE_WORKERS, "now() - interval '5 minutes'")
    served = (None, [queues.SMS], [queues.SMS, queues.EMAIL, queues.DEFAULT])
    workers = [(worker_id, served[k % 3]) for k, worker_id in enumerate(live + stale)]
    seeder.workers, seeder.stale_workers = workers[:LIVE_WORKERS], workers[LIVE_WORKERS:]
    for k, (worker_id, queues_served) in enumerate(workers):
        register(conn, worker_id, k, queues_served, stopped=False)
    # Workers that stopped cleanly yesterday: in the registry, gone from Procrastinate's.
    for k in range(LIVE_WORKERS + STALE_WORKERS, LIVE_WORKERS + STALE_WORKERS + 3):
        register(conn, 100000 + k, k, None, stopped=True)


def new_workers(conn: psycopg.Connection, count: int, heartbeat: str) -> list[int]:
    """Rows in procrastinate_workers with this heartbeat (an SQL expression); their ids."""
    rows = conn.execute(
        f"INSERT INTO procrastinate_workers (last_heartbeat) SELECT {heartbeat}"
        " FROM generate_series(1, %s) RETURNING id",
        (count,),
    ).fetchall()
    return [row[0] for row in rows]


def register(conn: psycopg.Connection, worker_id: int, k: int, served, stopped: bool) -> None:
    """A worker_registry row for worker ``k`` of WORKER_NAMES."""
    conn.execute(
        "INSERT INTO worker_registry (worker_id, name, host, pid, queues, concurrency,"
        " started_at, stopped_at) VALUES (%s, %s, %s, %s, %s, %s,"
        " now() - %s * interval '1 hour', CASE WHEN %s THEN now() - interval '1 day' END)",
        (
            worker_id,
            WORKER_NAMES[k],
            WORKER_NAMES[k].split(":")[0],
            1000 + k * 37,
            served,
            WORKER_CONCURRENCY,
            48 if stopped else k + 1,
            stopped,
        ),
    )


def audit_entries(conn: psycopg.Connection, jobs: int) -> None:
    """Some history in the audit log: sign-ins, cancels and retries by operators."""
    conn.execute(
        """
        INSERT INTO audit_log (at, actor_type, actor_id, actor_label, organization_id,
                               action, target_type, target_id, ip, details)
        SELECT now() - n * interval '1 minute', 'user', NULL,
               'operator' || mod(n, 7) || '@tenant' || (mod(n, 5) + 1) || '.example.com',
               mod(n, 5) + 1,
               (ARRAY['job.cancel', 'job.retry', 'login.succeeded'])[mod(n, 3) + 1],
               CASE WHEN mod(n, 3) = 2 THEN 'user' ELSE 'job' END,
               CASE WHEN mod(n, 3) = 2 THEN 'operator' || mod(n, 7)
                    ELSE (mod(n * 7919, %s) + 1)::text END,
               '10.0.' || mod(n, 200) || '.' || mod(n, 250), '{}'
          FROM generate_series(1, 5000) n
        """,
        (jobs,),
    )


def periodic_defers(conn: psycopg.Connection, rows: list[tuple[str, int, int]]) -> None:
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY procrastinate_periodic_defers (task_name, periodic_id, defer_timestamp, job_id)"
            " FROM STDIN"
        ) as copy,
    ):
        for task_name, tick, job_id in rows:
            copy.write_row((task_name, "", tick, job_id))


def copy_jobs(url: str, seeder: Seeder, spool) -> Counts:
    """COPY the jobs and their events at once, on two connections, and write the attempts
    to ``spool`` for later."""
    with contextlib.ExitStack() as stack:
        writers = []
        for table, columns in (
            ("procrastinate_jobs", JOB_COLUMNS),
            ("procrastinate_events", EVENT_COLUMNS),
        ):
            conn = stack.enter_context(replica_session(url))
            cur = stack.enter_context(conn.cursor())
            copy = stack.enter_context(cur.copy(f"COPY {table} ({columns}) FROM STDIN"))
            writers.append(Writer(copy))
        return seeder.write(*writers, Writer(spool))


def copy_attempts(url: str, path: str, parts: int = 1) -> None:
    """COPY the spooled attempts, in ``parts`` slices at once, with triggers on: Howdah's
    own triggers on job_attempts see the jobs, which are committed by now. (One slice by
    default: two long transactions that both create rollup rows through a trigger can
    deadlock on them.)"""
    size = os.path.getsize(path)
    bounds = [0]
    with open(path, "rb") as spool:
        for k in range(1, parts):
            spool.seek(size * k // parts)
            spool.readline()
            bounds.append(max(bounds[-1], spool.tell()))
    bounds.append(size)

    def copy_slice(start: int, end: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn, open(path, "rb") as spool:
            conn.execute("SET synchronous_commit = off")
            spool.seek(start)
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY job_attempts ({ATTEMPT_COLUMNS}) FROM STDIN") as copy,
            ):
                while start < end:
                    block = spool.read(min(1 << 20, end - start))
                    copy.write(block)
                    start += len(block)

    with concurrent.futures.ThreadPoolExecutor(parts) as pool:
        for done in [pool.submit(copy_slice, *pair) for pair in itertools.pairwise(bounds)]:
            done.result()


def seed(url: str, jobs: int, force: bool = False, log=print) -> dict:
    """Seed the (migrated, empty) database at ``url`` with ``jobs`` jobs, unless it holds
    that seed already; returns what it did."""
    with psycopg.connect(url, autocommit=True) as conn:
        mark = seed_mark(conn)
        if not force and mark.get("jobs") == jobs:
            log(f"seed: {jobs:,} jobs already there; skipping")
            return {"jobs": jobs, "seconds": mark["seconds"], "skipped": True, **size(conn)}
        present = conn.execute("SELECT EXISTS (SELECT 1 FROM procrastinate_jobs)").fetchone()[0]
        if present:
            raise SystemExit(
                "seed: this database has jobs but no matching seed mark (another size, or an"
                " older seed): drop it, or give an empty one"
            )
    started = time.monotonic()
    seeder = Seeder(jobs, time.time())
    with replica_session(url) as conn:
        organizations_and_workers(conn, seeder)
    with tempfile.NamedTemporaryFile("w", prefix="howdah-seed-", suffix=".copy") as spool:
        counts = copy_jobs(url, seeder, spool)
        spool.flush()
        log(
            f"seed: {counts.jobs:,} jobs and {counts.events:,} events in"
            f" {time.monotonic() - started:.1f} s; now {counts.attempts:,} attempts"
        )
        copy_attempts(url, spool.name)
    with replica_session(url) as conn:
        periodic_defers(conn, seeder.periodic)
        audit_entries(conn, jobs)
        conn.execute(
            "SELECT setval('procrastinate_jobs_id_seq', %s),"
            " setval('procrastinate_events_id_seq', %s),"
            " setval('procrastinate_periodic_defers_id_seq', greatest(1, %s))",
            (counts.jobs, counts.events, len(seeder.periodic)),
        )
        rollups(conn)
        copied = time.monotonic() - started
        log(
            f"seed: copied {counts.jobs:,} jobs, {counts.events:,} events,"
            f" {counts.attempts:,} attempts in {copied:.1f} s; analyzing"
        )
        conn.execute("ANALYZE")
        seconds = time.monotonic() - started
        mark_seeded(conn, jobs, seconds)
        skipped = skipped_triggers(conn)
        if skipped:
            log(f"seed: these triggers did not fire while seeding: {', '.join(skipped)}")
        result = {
            "jobs": counts.jobs,
            "events": counts.events,
            "attempts": counts.attempts,
            "by_state": counts.by_state,
            "seconds": round(seconds, 1),
            "skipped": False,
            "triggers_not_fired": skipped,
            **size(conn),
        }
    log(f"seed: done in {seconds:.1f} s; database {result['database_size']}")
    return result


def rollups(conn: psycopg.Connection) -> None:
    """What the worker and housekeeping keep up to date as jobs run, made from the seed:
    the runs ended per minute in the last week (the worker adds them as it ends runs),
    and the finished jobs by state (housekeeping counts them every minute)."""
    conn.execute(
        """
        INSERT INTO job_minutes (minute, queue_name, organization, finished, failed)
        SELECT date_trunc('minute', e.at), j.queue_name, coalesce(j.args ->> 'organization_id', ''),
               count(*), count(*) FILTER (WHERE e.type <> 'succeeded')
        FROM procrastinate_events e JOIN procrastinate_jobs j ON j.id = e.job_id
        WHERE e.type IN ('succeeded', 'failed', 'aborted') AND e.at > now() - interval '7 days'
        GROUP BY 1, 2, 3
        """
    )
    asyncio.run(count_finished(conn.info.dsn))


async def count_finished(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as aconn:
        await maintenance_store.count_finished_jobs(aconn)


def skipped_triggers(conn: psycopg.Connection) -> list[str]:
    """Triggers of Howdah's on the tables seeded with triggers off (they did not fire)."""
    rows = conn.execute(
        "SELECT tgrelid::regclass::text || '.' || tgname FROM pg_trigger"
        " WHERE tgrelid IN ('procrastinate_jobs'::regclass, 'procrastinate_events'::regclass)"
        " AND NOT tgisinternal AND tgname NOT LIKE 'procrastinate%' ORDER BY 1"
    ).fetchall()
    return [row[0] for row in rows]


def size(conn: psycopg.Connection) -> dict:
    """The database's size, and the job tables' with their indexes."""
    row = conn.execute(
        "SELECT pg_size_pretty(pg_database_size(current_database())),"
        " pg_size_pretty(pg_total_relation_size('procrastinate_jobs')),"
        " pg_size_pretty(pg_total_relation_size('procrastinate_events')),"
        " pg_size_pretty(pg_total_relation_size('job_attempts'))"
    ).fetchone()
    return dict(
        zip(("database_size", "jobs_size", "events_size", "attempts_size"), row, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--database-url", required=True, help="a migrated database to fill")
    parser.add_argument("--force", action="store_true", help="seed even if marked as seeded")
    options = parser.parse_args()
    print(json.dumps(seed(options.database_url, options.jobs, options.force), indent=2))


if __name__ == "__main__":
    main()
