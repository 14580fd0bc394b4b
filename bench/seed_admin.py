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
import bisect
import concurrent.futures
import contextlib
import datetime
import itertools
import json
import os
import random
import tempfile
import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

from tasks import queues

SEED_VERSION = 1
MARK = "howdah admin bench seed "
ORGANIZATIONS = 50
WEEK = 7 * 24 * 3600.0
RECENT = 2 * 3600.0  # the waiting and running jobs were deferred in this window
RECENT_SHARE = 0.08  # of all jobs, deferred in that window
CHUNK = 4000  # rows per COPY write
LIVE_WORKERS = 10
STALE_WORKERS = 2
WORKER_CONCURRENCY = 200
HOUSEKEEPING_TICKS = (  # (task, seconds between runs) over the last day
    ("maintenance:retry_stalled_jobs", 10),
    ("maintenance:purge_finished_jobs", 600),
)

# (task, queue, weight, mean run seconds, failure kinds)
TASKS = (
    ("sms:send_notification", queues.SMS, 30, 0.3, ("timeout", "refused")),
    ("sms:send_reminder", queues.SMS, 8, 0.3, ("timeout", "refused")),
    ("sms:send_verification_code", queues.SMS, 10, 0.2, ("timeout", "refused")),
    ("sms:check_delivery", queues.SMS, 6, 0.1, ("timeout", "http")),
    ("email:send_digest", queues.EMAIL, 10, 1.5, ("smtp", "validation", "time_limit")),
    ("email:send_receipt", queues.EMAIL, 6, 0.4, ("smtp",)),
    ("email:send_welcome", queues.EMAIL, 3, 0.4, ("smtp",)),
    ("email:send_password_reset", queues.EMAIL, 3, 0.3, ("smtp",)),
    ("email:send_invoice", queues.EMAIL, 2, 0.6, ("smtp", "key")),
    ("email:render_report", queues.EMAIL, 2, 4.0, ("time_limit", "key")),
    ("webhooks:deliver", queues.DEFAULT, 10, 0.5, ("http", "timeout")),
    ("billing:sync_invoice", queues.DEFAULT, 4, 0.8, ("http", "key")),
    ("search:reindex_document", queues.DEFAULT, 3, 0.2, ("key",)),
    ("exports:build_csv", queues.DEFAULT, 2, 6.0, ("time_limit",)),
    ("images:resize", queues.DEFAULT, 2, 1.0, ("key", "time_limit")),
    ("diagnostics:noop", queues.DEFAULT, 1, 0.01, ("key",)),
    ("diagnostics:sleep", queues.DEFAULT, 0.5, 2.0, ("time_limit",)),
    ("diagnostics:fail_then_succeed", queues.DEFAULT, 0.5, 0.05, ("flaky",)),
)
PRIORITY = {queues.SMS: 10}

# Kinds of failure: (error class, message pattern, where it was raised); the numbers in
# the messages vary, so only normalising them groups the failures.
FAILURES = {
    "timeout": ("ProviderTimeout", "provider did not answer within 30 s (request {hex})", "send"),
    "refused": (
        "ProviderError",
        "provider refused +1415555{n4}: number is not reachable (code 21{n3})",
        "send",
    ),
    "smtp": (
        "SMTPServerDisconnected",
        "Connection unexpectedly closed by smtp-{n1}.mail.example.net",
        "deliver",
    ),
    "http": (
        "HTTPStatusError",
        "Server error '503 Service Unavailable' for url 'https://hooks.example.com/t/{n4}'",
        "post",
    ),
    "validation": (
        "ValidationError",
        "1 validation error for DigestPayload\nrecipients.0\n  value is not a valid email"
        " address: user{n4}@ [type=value_error]",
        "load",
    ),
    "time_limit": ("TimeLimitExceeded", "the job ran longer than its time limit of 30 s", "run"),
    "key": ("KeyError", "'customer_{n4}'", "lookup"),
    "flaky": ("RuntimeError", "failing on purpose, attempt {n1}", "run"),
    "statement_timeout": (
        "QueryCanceled",
        "canceling statement due to statement timeout",
        "recover_stalled_jobs",
    ),
}

# Shares of all jobs by final state; succeeded takes the rest.
SHARES = {"failed": 0.05, "cancelled": 0.02, "aborted": 0.005, "waiting": 0.05, "running": 0.002}

JOB_COLUMNS = (
    "id, queue_name, task_name, priority, lock, queueing_lock, args, status, scheduled_at,"
    " attempts, abort_requested, worker_id"
)
EVENT_COLUMNS = "id, job_id, type, at"
ATTEMPT_COLUMNS = (
    "job_id, attempt, worker_name, outcome, started_at, finished_at, error_class,"
    " error_message, traceback, result_summary, retry_at"
)
NULL = "\\N"
FINISHED = ("succeeded", "failed", "cancelled", "aborted")


def escape(text: str) -> str:
    """A value in COPY's text format."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


class Clock:
    """Timestamps as COPY text, fast: one formatted minute per minute of the week."""

    def __init__(self, now: float):
        self.now = now
        self.base = (int(now - WEEK - 86400) // 60) * 60
        minutes = int((now + 3 * 86400 - self.base) // 60) + 1
        utc = datetime.UTC
        self.minutes = [
            datetime.datetime.fromtimestamp(self.base + 60 * m, utc).strftime("%Y-%m-%d %H:%M")
            for m in range(minutes)
        ]

    def __call__(self, t: float) -> str:
        minute, second = divmod(t - self.base, 60.0)
        return f"{self.minutes[int(minute)]}:{second:09.6f}+00"


@dataclass
class Counts:
    """What was written, for the report and the test."""

    jobs: int = 0
    events: int = 0
    attempts: int = 0
    by_state: dict | None = None


class Writer:
    """Rows buffered for one COPY, sent in chunks."""

    def __init__(self, copy):
        self.copy = copy
        self.rows: list[str] = []
        self.count = 0

    def add(self, row: str) -> None:
        self.rows.append(row)
        if len(self.rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.copy.write("".join(self.rows))
            self.count += len(self.rows)
            self.rows = []


def zipf_cumulative(n: int, s: float) -> list[float]:
    return list(itertools.accumulate(1 / k**s for k in range(1, n + 1)))


def failure_text(rng: random.Random, kind: str, task: str) -> tuple[str, str, str]:
    """(class, message, traceback) of one failure, escaped for COPY."""
    error_class, pattern, where = FAILURES[kind]
    message = pattern.format(
        hex=f"{rng.getrandbits(48):012x}",
        n1=rng.randint(1, 9),
        n3=rng.randint(100, 999),
        n4=rng.randint(1000, 9999),
    )
    module = task.split(":")[0]
    traceback = (
        "Traceback (most recent call last):\n"
        '  File "/app/tasks/worker/execution.py", line 171, in run\n'
        "    result = await task(**arguments)\n"
        f'  File "/app/tasks/{module}.py", line 38, in {task.split(":")[1]}\n'
        f"    return await {where}(payload)\n"
        f'  File "/app/tasks/{module}.py", line 57, in {where}\n'
        f"    raise {error_class}(...)\n"
        f"{error_class}: {message}\n"
    )
    return escape(error_class), escape(message), escape(traceback)


class Seeder:
    """Writes the jobs, their events and attempts, in id order, to three COPY writers."""

    def __init__(self, jobs: int, now: float, seed: int = 9):
        self.n = jobs
        self.now = now
        self.rng = random.Random(seed)  # noqa: S311  (made-up data, repeatable)
        self.ts = Clock(now)
        self.event_id = 0
        self.counts = Counts(by_state=dict.fromkeys([*SHARES, "succeeded"], 0))
        self.workers: list[int] = []  # live worker ids, filled in before the jobs
        self.stale_workers: list[int] = []
        self.worker_names = [f"worker-{h}.prod.internal:{1000 + h * 37}" for h in range(24)]
        self.tick_times = self._ticks()
        self.periodic: list[tuple[str, int, int]] = []  # (task, timestamp, job id)
        self.running_locks: list[str] = []

    def _ticks(self) -> list[tuple[float, str]]:
        ticks = []
        for task, every in HOUSEKEEPING_TICKS:
            first = (int(self.now - 86400) // every + 1) * every
            ticks += [(float(t), task) for t in range(first, int(self.now) - 60, every)]
        return sorted(ticks)

    def created_at(self, i: int) -> float:
        """When job i (0-based) was deferred: ids grow with time."""
        old = self.n * (1 - RECENT_SHARE)
        if i < old:
            return self.now - WEEK + (WEEK - RECENT) * i / old
        return self.now - RECENT + (RECENT - 2.0) * (i - old) / (self.n - old)

    def states(self) -> list[str]:
        """Each job's final state: the waiting and running ones among the newest."""
        rng, n = self.rng, self.n
        recent = n - int(n * (1 - RECENT_SHARE))
        pending = {s: int(n * SHARES[s]) for s in ("waiting", "running")}
        pending_total = min(recent, sum(pending.values()))
        finished = ("succeeded", "failed", "cancelled", "aborted")
        weights = [1 - sum(SHARES.values()), SHARES["failed"], SHARES["cancelled"]]
        weights.append(SHARES["aborted"])
        states = rng.choices(finished, weights=weights, k=n)
        tail = rng.sample(range(n - recent, n), pending_total)
        running = pending["running"] * pending_total // max(1, sum(pending.values()))
        for k, i in enumerate(tail):
            states[i] = "running" if k < running else "waiting"
        return states

    def write(self, jobs: Writer, events: Writer, attempts: Writer) -> Counts:
        rng = self.rng
        cumulative_orgs = zipf_cumulative(ORGANIZATIONS, 1.1)
        org_total = cumulative_orgs[-1]
        task_cumulative = list(itertools.accumulate(t[2] for t in TASKS))
        task_total = task_cumulative[-1]
        states = self.states()
        ticks, next_tick = self.tick_times, 0
        for i in range(self.n):
            job_id = i + 1
            created = self.created_at(i)
            state = states[i]
            if next_tick < len(ticks) and created >= ticks[next_tick][0] and state in FINISHED:
                # A periodic run was due: this job is it (ticks skipped at small sizes).
                while next_tick < len(ticks) and created >= ticks[next_tick][0]:
                    next_tick += 1
                tick, task_name = ticks[next_tick - 1]
                self.periodic.append((task_name, int(tick), job_id))
                self.housekeeping(job_id, task_name, int(tick), created, jobs, events, attempts)
                continue
            org = bisect.bisect(cumulative_orgs, rng.random() * org_total) + 1
            task = TASKS[bisect.bisect(task_cumulative, rng.random() * task_total)]
            self.tenant_job(job_id, org, task, state, created, jobs, events, attempts)
        for writer in (jobs, events, attempts):
            writer.flush()
        self.counts.jobs, self.counts.events = jobs.count, events.count
        self.counts.attempts = attempts.count
        return self.counts

    def event(self, events: Writer, job_id: int, kind: str, at: float) -> None:
        self.event_id += 1
        events.add(f"{self.event_id}\t{job_id}\t{kind}\t{self.ts(at)}\n")

    def housekeeping(self, job_id, task_name, tick, created, jobs, events, attempts) -> None:
        """A periodic housekeeping run: no organization, urgent, nearly always succeeded."""
        ts = self.ts
        state = "failed" if self.rng.random() < 0.002 else "succeeded"
        start = created + 0.01 + self.rng.random() * 0.05
        end = min(start + 0.02 + self.rng.random() * 0.1, self.now - 0.5)
        args = f'{{"timestamp": {tick}}}'
        jobs.add(
            f"{job_id}\t{queues.HOUSEKEEPING}\t{task_name}\t{queues.URGENT_PRIORITY}\t{NULL}\t"
            f"{NULL}\t{args}\t{state}\t{NULL}\t1\tf\t{NULL}\n"
        )
        self.event(events, job_id, "deferred", created)
        self.event(events, job_id, "started", start)
        self.event(events, job_id, state, end)
        worker = self.worker_names[job_id % len(self.worker_names)]
        error = (NULL, NULL, NULL)
        if state == "failed":
            error = failure_text(self.rng, "statement_timeout", task_name)
        attempts.add(
            f"{job_id}\t1\t{worker}\t{state}\t{ts(start)}\t{ts(end)}\t{error[0]}\t{error[1]}\t"
            f"{error[2]}\t{NULL}\t{NULL}\n"
        )
        self.counts.by_state[state] += 1

    def tenant_job(self, job_id, org, task, state, created, jobs, events, attempts) -> None:
        """One tenant's job, its events and the attempts that ended."""
        rng, ts, now = self.rng, self.ts, self.now
        task_name, queue, _, mean, kinds = task
        priority = PRIORITY.get(queue, 0)
        if rng.random() < 0.1:
            priority = rng.choice((-50, -10, 5, 20, 50, 100))
        args = self.args(org, task_name, job_id)
        lock = queueing_lock = NULL
        if rng.random() < 0.05:
            lock = f"org:{org}:customer-{rng.randint(1, 200)}"
        scheduled = NULL
        worker = NULL
        abort_requested = "f"
        self.event(events, job_id, "deferred", created)

        # How many runs ended, and how.
        if state == "succeeded":
            r = rng.random()
            runs = 1 if r < 0.93 else (2 if r < 0.99 else 3)
        elif state == "failed":
            runs = rng.choice((1, 1, 3, 5))
        elif state == "aborted":
            runs = 1
        elif state == "running":
            runs = 2 if rng.random() < 0.05 else 1
        elif state == "waiting":
            runs = 1 if rng.random() < 0.1 else 0  # a retry, now due
        else:  # cancelled before it ran
            runs = 0

        status = {"waiting": "todo", "running": "doing"}.get(state, state)
        at = created + min((now - created) * 0.2, 0.005 + rng.expovariate(4.0))
        ended = 0
        kind = rng.choice(kinds)  # a job tends to fail the same way each time
        for attempt in range(1, runs + 1):
            start = at
            self.event(events, job_id, "started", start)
            if state == "running" and attempt == runs:
                break  # running now
            worker_name = self.worker_names[rng.randrange(len(self.worker_names))]
            duration = 30.0 if kind == "time_limit" else mean * (0.3 + 1.4 * rng.random())
            # Every run ends before now, however close to now the job was deferred.
            end = min(start + duration, start + max(0.001, (now - 1.0 - start) * 0.5))
            ended = attempt
            if state == "aborted":
                self.event(events, job_id, "abort_requested", (start + end) / 2)
                self.event(events, job_id, "aborted", end)
                attempts.add(
                    f"{job_id}\t{attempt}\t{worker_name}\taborted\t{ts(start)}\t{ts(end)}\t"
                    f"JobAborted\tthe job was aborted\t{NULL}\t{NULL}\t{NULL}\n"
                )
            elif state == "succeeded" and attempt == runs:
                self.event(events, job_id, "succeeded", end)
                attempts.add(
                    f"{job_id}\t{attempt}\t{worker_name}\tsucceeded\t{ts(start)}\t{ts(end)}\t"
                    f"{NULL}\t{NULL}\t{NULL}\t{NULL}\t{NULL}\n"
                )
            else:
                retry = None
                if state != "failed" or attempt < runs:
                    retry = end + min(10.0 * 2**attempt, (now - end) * 0.3)
                scheduled = (
                    self.failed_run(
                        job_id,
                        attempt,
                        worker_name,
                        kind,
                        task_name,
                        start,
                        end,
                        retry,
                        events,
                        attempts,
                    )
                    or scheduled
                )
                if retry is not None:
                    at = retry + rng.random() * 0.2  # picked up soon after it is due

        if state == "running":
            worker = str(self.running_worker(job_id))
            if lock != NULL or rng.random() < 0.2:
                lock = f"org:{org}:customer-{job_id}"  # unique among running jobs
                self.running_locks.append(lock)
        elif state == "waiting":
            if ended == 0 and rng.random() < 0.33:
                when = now + rng.uniform(60, 86400)
                scheduled = ts(when)
                self.event(events, job_id, "scheduled", when)
            if lock != NULL and self.running_locks:
                lock = self.running_locks[-1 - rng.randrange(min(50, len(self.running_locks)))]
            if rng.random() < 0.04:
                queueing_lock = f"org:{org}:digest-{job_id}"  # unique among waiting jobs
        elif state == "cancelled":
            self.event(
                events, job_id, "cancelled", created + min(now - created, 600) * rng.random()
            )
        self.counts.by_state[state] += 1
        jobs.add(
            f"{job_id}\t{queue}\t{task_name}\t{priority}\t{lock}\t{queueing_lock}\t{args}\t"
            f"{status}\t{scheduled}\t{ended}\t{abort_requested}\t{worker}\n"
        )

    def failed_run(
        self, job_id, attempt, worker_name, kind, task_name, start, end, retry, events, attempts
    ) -> str | None:
        """A run that failed (retried at ``retry``, if not None); the job's new scheduled_at."""
        ts = self.ts
        error_class, message, traceback = failure_text(self.rng, kind, task_name)
        if self.rng.random() < 0.01:  # its worker died: recovery recorded the run as lost
            outcome, error_class, traceback = "lost", "WorkerLost", NULL
            message = "the worker stopped sending heartbeats while running this job"
        else:
            outcome = "failed"
        attempts.add(
            f"{job_id}\t{attempt}\t{worker_name}\t{outcome}\t{ts(start)}\t{ts(end)}\t"
            f"{error_class}\t{message}\t{traceback}\t{NULL}\t"
            f"{NULL if retry is None else ts(retry)}\n"
        )
        if retry is None:
            self.event(events, job_id, "failed", end)
            return None
        self.event(events, job_id, "deferred_for_retry", end)
        self.event(events, job_id, "scheduled", retry)
        return ts(retry)

    def running_worker(self, job_id: int) -> int:
        """A running job's worker: most on live workers, a few on stale ones."""
        if self.stale_workers and job_id % 25 == 0:
            return self.stale_workers[job_id % len(self.stale_workers)]
        return self.workers[job_id % len(self.workers)]

    def args(self, org: int, task_name: str, job_id: int) -> str:
        """The job's arguments as JSON text (no character COPY would need escaped)."""
        if task_name.startswith("sms:"):
            return (
                f'{{"organization_id": {org}, "to": "+1415555{job_id % 10000:04d}",'
                f' "body": "Your code is {job_id % 999983:06d}"}}'
            )
        if task_name == "email:send_digest":
            return (
                f'{{"organization_id": {org}, "period": "daily",'
                f' "recipients": ["ops{job_id % 97}@tenant{org}.example.com"]}}'
            )
        if task_name == "diagnostics:sleep":
            return f'{{"organization_id": {org}, "seconds": 2.0}}'
        if task_name == "diagnostics:fail_then_succeed":
            return f'{{"organization_id": {org}, "failures": 1}}'
        if task_name == "diagnostics:noop":
            return f'{{"organization_id": {org}}}'
        return f'{{"organization_id": {org}, "ref": {job_id % 100003}}}'


# --- the database side -------------------------------------------------------------


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
    live = conn.execute(
        "INSERT INTO procrastinate_workers (last_heartbeat)"
        " SELECT now() - random() * interval '5 seconds' FROM generate_series(1, %s)"
        " RETURNING id",
        (LIVE_WORKERS,),
    ).fetchall()
    stale = conn.execute(
        "INSERT INTO procrastinate_workers (last_heartbeat)"
        " SELECT now() - interval '5 minutes' FROM generate_series(1, %s) RETURNING id",
        (STALE_WORKERS,),
    ).fetchall()
    seeder.workers = [row[0] for row in live]
    seeder.stale_workers = [row[0] for row in stale]
    every = seeder.workers + seeder.stale_workers
    for k, worker_id in enumerate(every):
        queues_served = (
            None if k % 3 == 0 else [queues.SMS, queues.EMAIL, queues.DEFAULT][: k % 3 + 1]
        )
        conn.execute(
            "INSERT INTO worker_registry (worker_id, name, host, pid, queues, concurrency,"
            " started_at) VALUES (%s, %s, %s, %s, %s, %s, now() - %s * interval '1 hour')",
            (
                worker_id,
                seeder.worker_names[k],
                seeder.worker_names[k].split(":")[0],
                1000 + k * 37,
                queues_served,
                WORKER_CONCURRENCY,
                k + 1,
            ),
        )
    # Workers that stopped cleanly yesterday: in the registry, gone from Procrastinate's.
    for k in range(len(every), len(every) + 3):
        conn.execute(
            "INSERT INTO worker_registry (worker_id, name, host, pid, queues, concurrency,"
            " started_at, stopped_at) VALUES (%s, %s, %s, %s, NULL, %s,"
            " now() - interval '2 days', now() - interval '1 day')",
            (
                100000 + k,
                seeder.worker_names[k],
                seeder.worker_names[k].split(":")[0],
                1000 + k * 37,
                WORKER_CONCURRENCY,
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
                "seed: this database has jobs but no matching seed mark; give an empty one"
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
