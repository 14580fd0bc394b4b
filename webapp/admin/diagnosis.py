""" "Why is this job not running?": every reason that holds for a waiting job, in plain
words, from facts read in the database (``gather``) and worded here (``reasons``)."""

import datetime
from dataclasses import dataclass, field

import psycopg

from webapp.admin.formatting import span, when
from webapp.queue import organization_of
from webapp.store import diagnosis as store

# Index entries read at most, for each kind of job ahead, so that the count stays fast:
# past it the page says "at least".
AHEAD_LIMIT = 1_000
TOP_TASKS = 3  # tasks named when every slot is busy


@dataclass(frozen=True)
class Reason:
    """One reason, as a sentence; ``job_id`` names a job to link after ``text``."""

    kind: str
    text: str
    job_id: int | None = None
    after: str = ""


@dataclass(frozen=True)
class Facts:
    """What the database says about a waiting job's chances (see ``gather``)."""

    settings: dict | None = None
    lock_holder: dict | None = None
    workers: list[dict] = field(default_factory=list)
    running: dict = field(default_factory=lambda: {"queue": 0, "organization": 0})
    busy_with: list[dict] = field(default_factory=list)
    ahead: dict = field(default_factory=lambda: {"ahead": 0, "more": False})
    stale_seconds: int = 30


def gather(
    conn: psycopg.Connection, job: dict, stale_seconds: int, reader_organization: int | None
) -> Facts:
    """Read the facts behind ``reasons`` for a waiting job, as a reader acting for
    ``reader_organization`` (``None``: a platform admin) may see them."""
    queue = job["queue_name"]
    workers = store.list_live_workers(conn, queue, stale_seconds)
    holder = None
    if job["lock"] is not None:
        holder = store.find_lock_holder(conn, job["lock"], job["priority"], job["id"])
    worker_ids = [w["worker_id"] for w in workers]
    return Facts(
        settings=store.get_queue_settings(conn, queue),
        lock_holder=holder,
        workers=workers,
        running=store.count_running(conn, queue, organization_of(job["args"])),
        busy_with=store.list_running_tasks(conn, worker_ids, reader_organization, TOP_TASKS)
        if workers
        else [],
        ahead=store.count_jobs_ahead(conn, queue, job["priority"], job["id"], AHEAD_LIMIT),
        stale_seconds=stale_seconds,
    )


def plural(count: int, word: str) -> str:
    """ "1 job", "3 jobs"."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def scheduled(job: dict, now: datetime.datetime) -> Reason | None:
    """Its time has not come."""
    at = job["scheduled_at"]
    if at is None or at <= now:
        return None
    return Reason("scheduled", f"It is scheduled for {when(at)} UTC, in {span(at - now)}.")


def paused(job: dict, facts: Facts, now: datetime.datetime) -> Reason | None:
    """Its queue is paused."""
    settings = facts.settings or {}
    since = settings.get("paused_at")
    if since is None:
        return None
    by = settings.get("paused_by") or "someone unrecorded"
    return Reason(
        "paused",
        f"Its queue “{job['queue_name']}” is paused, since {when(since)} UTC"
        f" ({span(now - since)} ago), by {by}. Workers take none of its jobs until it"
        " is resumed.",
    )


def locked(job: dict, facts: Facts) -> Reason | None:
    """Another job holds its lock, or waits for it first."""
    holder = facts.lock_holder
    if holder is None:
        return None
    if holder["status"] == "doing":
        state = ", which is running."
    elif holder["scheduled_at"] is not None:
        state = f", which waits ahead of it (scheduled for {when(holder['scheduled_at'])} UTC)."
    else:
        state = ", which waits ahead of it."
    return Reason("lock", f"It waits for the lock “{job['lock']}” held by", holder["id"], state)


def no_worker(job: dict, facts: Facts) -> Reason | None:
    """No worker with a fresh heartbeat takes jobs from its queue."""
    if facts.workers:
        return None
    return Reason(
        "no_worker",
        f"No live worker serves the queue “{job['queue_name']}”: none that takes its jobs"
        f" has sent a heartbeat in the last {span(facts.stale_seconds)}.",
    )


def capped(job: dict, facts: Facts) -> list[Reason]:
    """Its queue, or its organization in that queue, runs as many jobs as it may."""
    settings, running, found = facts.settings or {}, facts.running, []
    cap = settings.get("max_running")
    if cap is not None and running["queue"] >= cap:
        found.append(
            Reason(
                "queue_cap",
                f"The queue “{job['queue_name']}” is at its cap: {running['queue']:,} of"
                f" {cap:,} jobs it may run at once are running.",
            )
        )
    org_cap = settings.get("organization_max_running")
    organization = organization_of(job["args"])
    if org_cap is not None and organization is not None and running["organization"] >= org_cap:
        found.append(
            Reason(
                "organization_cap",
                f"Organization {organization} is at its cap in “{job['queue_name']}”:"
                f" {running['organization']:,} of {org_cap:,} jobs it may run there at once"
                " are running.",
            )
        )
    return found


def busy(facts: Facts) -> Reason | None:
    """Every slot of the workers serving its queue runs a job."""
    slots = sum(w["concurrency"] for w in facts.workers)
    used = sum(w["running"] for w in facts.workers)
    if not facts.workers or used < slots:
        return None
    tasks = [f"{plural(t['running'], 'job')} of {t['task_name']}" for t in facts.busy_with]
    if sum(t["running"] for t in facts.busy_with) < used:
        tasks.append("others" if tasks else "jobs of other organizations")
    return Reason(
        "busy",
        f"Every worker slot is busy: the {plural(len(facts.workers), 'worker')} serving its"
        f" queue run {plural(used, 'job')} in their {plural(slots, 'slot')}"
        + (f": {', '.join(tasks)}." if tasks else "."),
    )


def behind(job: dict, facts: Facts, now: datetime.datetime) -> Reason | None:
    """Due jobs a worker takes first wait in its queue."""
    count, more = facts.ahead["ahead"], facts.ahead["more"]
    if count == 0 or (job["scheduled_at"] is not None and job["scheduled_at"] > now):
        return None
    many = f"at least {count:,} jobs" if more else plural(count, "job")
    return Reason(
        "behind",
        f"It waits behind {many} of higher priority, or of the same priority and deferred"
        f" earlier, in the queue “{job['queue_name']}”.",
    )


def reasons(job: dict, facts: Facts, now: datetime.datetime) -> list[Reason]:
    """Every reason that holds for a waiting job, or one saying it should start soon."""
    found = [
        scheduled(job, now),
        paused(job, facts, now),
        locked(job, facts),
        no_worker(job, facts),
        *capped(job, facts),
        busy(facts),
        behind(job, facts, now),
    ]
    found = [reason for reason in found if reason is not None]
    return found or [Reason("none", "Nothing holds it back: it should start within moments.")]
