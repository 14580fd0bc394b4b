"""The made-up week of jobs bench/seed_admin.py copies in: rows as COPY text, in id order.

Nothing here talks to the database; seed_admin.py gives the Seeder three writers (jobs,
events, attempts) and copies what it writes.
"""

import bisect
import datetime
import itertools
import random
from dataclasses import dataclass, field

from tasks import queues

ORGANIZATIONS = 50
WEEK = 7 * 24 * 3600.0
RECENT = 2 * 3600.0  # the waiting and running jobs were deferred in this window
RECENT_SHARE = 0.08  # of all jobs, deferred in that window
CHUNK = 4000  # rows per COPY write
WORKER_NAMES = tuple(f"worker-{h}.prod.internal:{1000 + h * 37}" for h in range(24))
HOUSEKEEPING_TICKS = (  # (task, seconds between runs) over the last day
    ("maintenance:retry_stalled_jobs", 10),
    ("maintenance:purge_finished_jobs", 600),
)
HOUSEKEEPING_TASK = (queues.HOUSEKEEPING, 0, 0.05, ("statement_timeout",))

# task -> (queue, weight, mean run seconds, failure kinds)
TASKS = {
    "sms:send_notification": (queues.SMS, 30, 0.3, ("timeout", "refused")),
    "sms:send_reminder": (queues.SMS, 8, 0.3, ("timeout", "refused")),
    "sms:send_verification_code": (queues.SMS, 10, 0.2, ("timeout", "refused")),
    "sms:check_delivery": (queues.SMS, 6, 0.1, ("timeout", "http")),
    "email:send_digest": (queues.EMAIL, 10, 1.5, ("smtp", "validation", "time_limit")),
    "email:send_receipt": (queues.EMAIL, 6, 0.4, ("smtp",)),
    "email:send_welcome": (queues.EMAIL, 3, 0.4, ("smtp",)),
    "email:send_password_reset": (queues.EMAIL, 3, 0.3, ("smtp",)),
    "email:send_invoice": (queues.EMAIL, 2, 0.6, ("smtp", "key")),
    "email:render_report": (queues.EMAIL, 2, 4.0, ("time_limit", "key")),
    "webhooks:deliver": (queues.DEFAULT, 10, 0.5, ("http", "timeout")),
    "billing:sync_invoice": (queues.DEFAULT, 4, 0.8, ("http", "key")),
    "search:reindex_document": (queues.DEFAULT, 3, 0.2, ("key",)),
    "exports:build_csv": (queues.DEFAULT, 2, 6.0, ("time_limit",)),
    "images:resize": (queues.DEFAULT, 2, 1.0, ("key", "time_limit")),
    "diagnostics:noop": (queues.DEFAULT, 1, 0.01, ("key",)),
    "diagnostics:sleep": (queues.DEFAULT, 0.5, 2.0, ("time_limit",)),
    "diagnostics:fail_then_succeed": (queues.DEFAULT, 0.5, 0.05, ("flaky",)),
}
PRIORITY = {queues.SMS: 10, queues.HOUSEKEEPING: queues.URGENT_PRIORITY}
CLIENT_PRIORITIES = (-50, -10, 5, 20, 50, 100)

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
ABORTED = ("JobAborted", "the job was aborted", "\\N")
LOST = ("WorkerLost", "the worker stopped sending heartbeats while running this job", "\\N")

# Shares of all jobs by final state; succeeded takes the rest.
SHARES = {"failed": 0.05, "cancelled": 0.02, "aborted": 0.005, "waiting": 0.05, "running": 0.002}
FINISHED = ("succeeded", "failed", "cancelled", "aborted")
STATUS = {"waiting": "todo", "running": "doing"}  # the others are Procrastinate's names
NULL = "\\N"


def escape(text: str) -> str:
    """A value in COPY's text format."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


class Clock:
    """Timestamps as COPY text, fast: one formatted minute per minute of the week."""

    def __init__(self, now: float):
        self.base = (int(now - WEEK - 86400) // 60) * 60
        minutes = int((now + 3 * 86400 - self.base) // 60) + 1
        self.minutes = [
            datetime.datetime.fromtimestamp(self.base + 60 * m, datetime.UTC).strftime(
                "%Y-%m-%d %H:%M"
            )
            for m in range(minutes)
        ]

    def __call__(self, t: float) -> str:
        minute, second = divmod(t - self.base, 60.0)
        return f"{self.minutes[int(minute)]}:{second:09.6f}+00"


class Writer:
    """Rows buffered for one COPY (or a file), sent in chunks."""

    def __init__(self, sink):
        self.sink = sink
        self.rows: list[str] = []
        self.count = 0

    def add(self, row: str) -> None:
        self.rows.append(row)
        if len(self.rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.sink.write("".join(self.rows))
            self.count += len(self.rows)
            self.rows = []


@dataclass
class Counts:
    """What was written, for the report and the test."""

    jobs: int = 0
    events: int = 0
    attempts: int = 0
    by_state: dict = field(default_factory=lambda: dict.fromkeys([*SHARES, "succeeded"], 0))


@dataclass(slots=True)
class Job:
    """One job's row as it is being made up."""

    id: int
    task_name: str
    queue: str
    state: str
    created: float
    args: str
    priority: int
    lock: str = NULL
    queueing_lock: str = NULL
    scheduled: str = NULL
    worker: str = NULL
    attempts: int = 0  # runs that ended

    def row(self) -> str:
        return (
            f"{self.id}\t{self.queue}\t{self.task_name}\t{self.priority}\t{self.lock}\t"
            f"{self.queueing_lock}\t{self.args}\t{STATUS.get(self.state, self.state)}\t"
            f"{self.scheduled}\t{self.attempts}\tf\t{self.worker}\n"
        )


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
    module, function = task.split(":")
    traceback = (
        "Traceback (most recent call last):\n"
        '  File "/app/tasks/worker/execution.py", line 171, in run\n'
        "    result = await task(**arguments)\n"
        f'  File "/app/tasks/{module}.py", line 38, in {function}\n'
        f"    return await {where}(payload)\n"
        f'  File "/app/tasks/{module}.py", line 57, in {where}\n'
        f"    raise {error_class}(...)\n"
        f"{error_class}: {message}\n"
    )
    return escape(error_class), escape(message), escape(traceback)


def run_count(rng: random.Random, state: str) -> int:
    """How many runs a job in ``state`` had (the last one may be under way)."""
    r = rng.random()
    if state == "succeeded":
        return 1 if r < 0.93 else (2 if r < 0.99 else 3)
    if state == "failed":
        return (1, 1, 3, 5)[int(r * 4)]
    if state == "running":
        return 2 if r < 0.05 else 1
    if state == "waiting":
        return 1 if r < 0.1 else 0  # a retry, now due
    return 1 if state == "aborted" else 0  # cancelled before it ran


def task_args(org: int, task_name: str, job_id: int) -> str:
    """A tenant job's arguments as JSON text (no character COPY would need escaped)."""
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
    extra = {
        "diagnostics:sleep": ', "seconds": 2.0',
        "diagnostics:fail_then_succeed": ', "failures": 1',
        "diagnostics:noop": "",
    }.get(task_name, f', "ref": {job_id % 100003}')
    return f'{{"organization_id": {org}{extra}}}'


class Seeder:
    """Writes the jobs, their events and attempts, in id order, to three writers."""

    def __init__(self, jobs: int, now: float, seed: int = 9):
        self.n = jobs
        self.now = now
        self.rng = random.Random(seed)  # noqa: S311  (made-up data, repeatable)
        self.ts = Clock(now)
        self.event_id = 0
        self.counts = Counts()
        # (id, queues served or None for all) of live and stale workers, filled in first
        self.workers: list[tuple[int, list | None]] = []
        self.stale_workers: list[tuple[int, list | None]] = []
        self.periodic: list[tuple[str, int, int]] = []  # (task, timestamp, job id)
        self.running_locks: list[str] = []
        self.out: dict[str, Writer] = {}

    def ticks(self) -> list[tuple[float, str]]:
        """When the periodic housekeeping tasks ran over the last day."""
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
        pending = int(n * SHARES["waiting"]) + int(n * SHARES["running"])
        weights = [1 - sum(SHARES.values()), *(SHARES[s] for s in FINISHED[1:])]
        states = rng.choices(FINISHED, weights=weights, k=n)
        tail = rng.sample(range(n - recent, n), min(recent, pending))
        running = int(n * SHARES["running"]) * len(tail) // max(1, pending)
        for k, i in enumerate(tail):
            states[i] = "running" if k < running else "waiting"
        return states

    def write(self, jobs: Writer, events: Writer, attempts: Writer) -> Counts:
        """Every job, in id order; the tenant's are skewed, housekeeping runs on its ticks."""
        self.out = {"jobs": jobs, "events": events, "attempts": attempts}
        rng = self.rng
        organizations = zipf_cumulative(ORGANIZATIONS, 1.1)
        names = list(TASKS)
        weights = list(itertools.accumulate(TASKS[name][1] for name in names))
        states = self.states()
        ticks, next_tick = self.ticks(), 0
        for i in range(self.n):
            created, state = self.created_at(i), states[i]
            if next_tick < len(ticks) and created >= ticks[next_tick][0] and state in FINISHED:
                # A periodic run was due: this job is it (ticks skipped at small sizes).
                while next_tick < len(ticks) and created >= ticks[next_tick][0]:
                    next_tick += 1
                self.housekeeping(i + 1, *ticks[next_tick - 1], created)
                continue
            org = bisect.bisect(organizations, rng.random() * organizations[-1]) + 1
            task_name = names[bisect.bisect(weights, rng.random() * weights[-1])]
            self.tenant_job(i + 1, org, task_name, state, created)
        for writer in self.out.values():
            writer.flush()
        self.counts.jobs, self.counts.events = jobs.count, events.count
        self.counts.attempts = attempts.count
        return self.counts

    def event(self, job_id: int, kind: str, at: float) -> None:
        self.event_id += 1
        self.out["events"].add(f"{self.event_id}\t{job_id}\t{kind}\t{self.ts(at)}\n")

    def housekeeping(self, job_id: int, tick: float, task_name: str, created: float) -> None:
        """A periodic housekeeping run: no organization, urgent, nearly always succeeded."""
        self.periodic.append((task_name, int(tick), job_id))
        state = "failed" if self.rng.random() < 0.002 else "succeeded"
        args = f'{{"timestamp": {int(tick)}}}'
        job = Job(
            job_id,
            task_name,
            queues.HOUSEKEEPING,
            state,
            created,
            args,
            PRIORITY[queues.HOUSEKEEPING],
        )
        self.event(job_id, "deferred", created)
        self.runs(job, HOUSEKEEPING_TASK, 1)
        self.counts.by_state[state] += 1
        self.out["jobs"].add(job.row())

    def tenant_job(self, job_id: int, org: int, task_name: str, state: str, created: float):
        """One tenant's job, its events and the attempts that ended."""
        rng = self.rng
        task = TASKS[task_name]
        priority = PRIORITY.get(task[0], 0)
        if rng.random() < 0.1:
            priority = rng.choice(CLIENT_PRIORITIES)
        args = task_args(org, task_name, job_id)
        job = Job(job_id, task_name, task[0], state, created, args, priority)
        if rng.random() < 0.05:
            job.lock = f"org:{org}:customer-{rng.randint(1, 200)}"
        self.event(job_id, "deferred", created)
        self.runs(job, task, run_count(rng, state))
        self.settle(job, org)
        self.counts.by_state[state] += 1
        self.out["jobs"].add(job.row())

    def runs(self, job: Job, task: tuple, count: int) -> None:
        """The job's runs: each started, and ended as its state says (but one under way)."""
        rng, now = self.rng, self.now
        kind = rng.choice(task[3])  # a job tends to fail the same way each time
        at = job.created + min((now - job.created) * 0.2, 0.005 + rng.expovariate(4.0))
        for attempt in range(1, count + 1):
            self.event(job.id, "started", at)
            if job.state == "running" and attempt == count:
                return  # under way
            duration = 30.0 if kind == "time_limit" else task[2] * (0.3 + 1.4 * rng.random())
            # Every run ends before now, however close to now the job was deferred.
            end = min(at + duration, at + max(0.001, (now - 1.0 - at) * 0.5))
            job.attempts = attempt
            worker = WORKER_NAMES[rng.randrange(len(WORKER_NAMES))]
            if job.state == "aborted":
                self.event(job.id, "abort_requested", (at + end) / 2)
                self.event(job.id, "aborted", end)
                self.attempt(job, worker, "aborted", at, end, ABORTED)
            elif job.state == "succeeded" and attempt == count:
                self.event(job.id, "succeeded", end)
                self.attempt(job, worker, "succeeded", at, end)
            else:
                retry = None
                if job.state != "failed" or attempt < count:
                    retry = end + min(10.0 * 2**attempt, (now - end) * 0.3)
                self.failed_run(job, worker, kind, at, end, retry)
                if retry is not None:
                    at = retry + rng.random() * 0.2  # picked up soon after it is due

    def attempt(self, job, worker, outcome, start, end, error=(NULL,) * 3, retry=None) -> None:
        """The job_attempts row of the job's last ended run."""
        ts = self.ts
        self.out["attempts"].add(
            f"{job.id}\t{job.attempts}\t{worker}\t{outcome}\t{ts(start)}\t{ts(end)}\t"
            f"{error[0]}\t{error[1]}\t{error[2]}\t{NULL}\t{NULL if retry is None else ts(retry)}\n"
        )

    def failed_run(self, job: Job, worker: str, kind: str, start, end, retry) -> None:
        """A run that failed, retried at ``retry`` unless it is None."""
        if self.rng.random() < 0.01:  # its worker died: recovery recorded the run as lost
            self.attempt(job, worker, "lost", start, end, LOST, retry)
        else:
            error = failure_text(self.rng, kind, job.task_name)
            self.attempt(job, worker, "failed", start, end, error, retry)
        if retry is None:
            self.event(job.id, "failed", end)
            return
        self.event(job.id, "deferred_for_retry", end)
        self.event(job.id, "scheduled", retry)
        job.scheduled = self.ts(retry)

    def settle(self, job: Job, org: int) -> None:
        """What a job's state adds: a worker and a unique lock, a schedule, a cancel."""
        rng = self.rng
        if job.state == "running":
            job.worker = str(self.running_worker(job))
            if job.lock != NULL or rng.random() < 0.2:
                job.lock = f"org:{org}:customer-{job.id}"  # unique among running jobs
                self.running_locks.append(job.lock)
        elif job.state == "waiting":
            if job.attempts == 0 and rng.random() < 0.33:
                when = self.now + rng.uniform(60, 86400)
                job.scheduled = self.ts(when)
                self.event(job.id, "scheduled", when)
            if job.lock != NULL and self.running_locks:  # waits for a running job's lock
                job.lock = self.running_locks[-1 - rng.randrange(min(50, len(self.running_locks)))]
            if rng.random() < 0.04:
                job.queueing_lock = f"org:{org}:digest-{job.id}"  # unique among waiting jobs
        elif job.state == "cancelled":
            wait = min(self.now - job.created, 600) * rng.random()
            self.event(job.id, "cancelled", job.created + wait)

    def running_worker(self, job: Job) -> int:
        """A running job's worker, one serving its queue: most live, a few stale."""
        pool = self.stale_workers if job.id % 25 == 0 and self.stale_workers else self.workers
        serving = [w for w, served in pool if served is None or job.queue in served]
        serving = serving or [w for w, served in self.workers if served is None]
        return serving[job.id % len(serving)]
