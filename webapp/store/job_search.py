"""The job list's search: jobs matching filters, newest first, one page at a time.

Each query is built from fixed fragments, one per filter in use, rather than one text
with ``%(x)s IS NULL OR ...`` for every filter: psycopg prepares a statement it runs
often, and a generic plan of the catch-all text could not pick the index that fits the
filters given. Every fragment is a constant; values always travel as parameters.
"""

from dataclasses import dataclass, field

import psycopg
from psycopg.rows import dict_row

from webapp.store import jobs as job_store

# The list's states, as conditions on Procrastinate's status. Written out (not bound) so
# the planner can match the partial indexes of migrations 0009 and 0022.
STATES = {
    "waiting": "j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())",
    "scheduled": "j.status = 'todo' AND j.scheduled_at > now()",
    "running": "j.status = 'doing'",
    "succeeded": "j.status = 'succeeded'",
    "failed": "j.status = 'failed'",
    "cancelled": "j.status = 'cancelled'",
    "aborted": "j.status = 'aborted'",
}
STATE_OF = """CASE
    WHEN j.status = 'todo' AND j.scheduled_at > now() THEN 'scheduled'
    WHEN j.status = 'todo' THEN 'waiting'
    WHEN j.status = 'doing' THEN 'running'
    ELSE j.status::text END"""
CONDITIONS = {
    "organization": "j.args ->> 'organization_id' = %(organization)s",
    "queue": "j.queue_name = %(queue)s",
    "hidden_queue": "j.queue_name <> %(hidden_queue)s",
    "task": "j.task_name = %(task)s",
    "ids": "j.id = ANY(%(ids)s)",
    # A failed attempt with this error key (migration 0018), through its failure groups
    # (a small table) and the index of each group's failed attempts.
    "error": "j.id IN (SELECT a.job_id FROM failure_groups g"
    " JOIN job_attempts a ON a.failure_group_id = g.id WHERE g.error_key = %(error)s)",
    "min_id": "j.id >= %(min_id)s",
    "below_id": "j.id < %(below_id)s",
}


# What a bulk action run in the background keeps of its filter, and applies again to
# each batch (the organization and the id bounds are kept apart): one list, so that the
# two cannot drift apart.
KEPT_FILTERS = ("queue", "hidden_queue", "state", "task", "error", "min_id")


@dataclass(frozen=True)
class JobFilter:
    """Which jobs: ``None`` leaves a filter out. ``min_id`` and ``below_id`` bound ids
    (the time range, the page cursor); ``organization`` is the page's scope."""

    organization: int | None = None
    queue: str | None = None
    hidden_queue: str | None = None
    state: str | None = None
    task: str | None = None
    error: str | None = None
    ids: list[int] | None = field(default=None)
    min_id: int | None = None
    below_id: int | None = None


def where(jobs: JobFilter) -> tuple[str, dict]:
    """The WHERE condition on ``procrastinate_jobs j`` and its parameters."""
    values = {name: getattr(jobs, name) for name in CONDITIONS if getattr(jobs, name) is not None}
    if "organization" in values:
        values["organization"] = str(values["organization"])
    parts = [CONDITIONS[name] for name in values]
    if jobs.state is not None:
        parts.append(STATES[jobs.state])
    return " AND ".join(parts) or "true", values


LIST_JOBS = """
    SELECT j.id, {state_of} AS state, j.task_name, j.queue_name,
           j.args ->> 'organization_id' AS organization_id, o.name AS organization_name,
           ev.created_at, ev.runs,
           CASE WHEN j.status IN ('succeeded', 'failed', 'cancelled', 'aborted')
                THEN ev.finished_at - ev.started_at END AS duration
    FROM (
        SELECT * FROM procrastinate_jobs j WHERE {condition}
        ORDER BY j.id DESC LIMIT %(limit)s
    ) j
    LEFT JOIN organizations o ON o.id::text = j.args ->> 'organization_id'
    {event_times}
    ORDER BY j.id DESC
"""


def list_query(jobs: JobFilter, limit: int) -> tuple[str, dict]:
    """The list's statement and parameters (also what the plan checks EXPLAIN)."""
    condition, values = where(jobs)
    return LIST_JOBS.format(
        state_of=STATE_OF, condition=condition, event_times=job_store.EVENT_TIMES
    ), {**values, "limit": limit}


def list_jobs(conn: psycopg.Connection, jobs: JobFilter, limit: int) -> list[dict]:
    """Up to ``limit`` matching jobs, newest first, with their organization's name, state,
    number of runs, and creation time and duration from Procrastinate's events."""
    query, values = list_query(jobs, limit)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, values).fetchall()


def count_matching_jobs(
    conn: psycopg.Connection, jobs: JobFilter, platform_tasks: list[str], cap: int
) -> list[dict]:
    """The newest ``cap`` matching jobs counted by what decides whether a bulk action
    applies to them: state, abort requested, retried before, platform-only task
    (``platform_tasks``). Capped, so that it reads an index for a bounded number of rows
    whatever the filters and the table (a count of a million rows takes a second)."""
    condition, values = where(jobs)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""
            SELECT {STATE_OF} AS state, j.abort_requested,
                   j.status IN ('cancelled', 'aborted') AND EXISTS (
                       SELECT 1 FROM job_retries r WHERE r.job_id = j.id) AS retried,
                   j.task_name = ANY(%(platform_tasks)s) AS platform_task,
                   count(*) AS jobs
            FROM (
                SELECT * FROM procrastinate_jobs j WHERE {condition}
                ORDER BY j.id DESC LIMIT %(cap)s
            ) j
            GROUP BY 1, 2, 3, 4
            """,
            {**values, "platform_tasks": platform_tasks, "cap": cap},
        ).fetchall()


async def count_jobs(conn: psycopg.AsyncConnection, jobs: JobFilter) -> int:
    """How many jobs match, exactly (for a background run: it may read the whole table)."""
    condition, values = where(jobs)
    cursor = await conn.execute(
        f"SELECT count(*) FROM procrastinate_jobs j WHERE {condition}", values
    )
    return (await cursor.fetchone())[0]


def job_id_deferred_from(conn: psycopg.Connection, at) -> int:
    """The smallest id of a job deferred at or after ``at`` (one past the newest id if
    none was); see ``howdah_job_id_deferred_from`` in migration 0022."""
    return conn.execute("SELECT howdah_job_id_deferred_from(%s)", (at,)).fetchone()[0]


def newest_job_id(conn: psycopg.Connection) -> int:
    """The id of the newest job (0 if there is none): a bulk action goes no further."""
    return conn.execute("SELECT coalesce(max(id), 0) FROM procrastinate_jobs").fetchone()[0]


def find_job_ids(
    conn: psycopg.Connection,
    organization: int | None,
    job_id: int | None,
    key: str,
    limit: int,
) -> list[int]:
    """Jobs in scope whose id is ``job_id`` or whose idempotency key is ``key`` (stored as
    the queueing lock ``org:<organization>:<key>``), newest first. Two index lookups, one
    by id and one by lock, for the lock of each organization in scope."""
    with conn.cursor() as cur:
        rows = cur.execute(
            """
            SELECT j.id FROM (
                SELECT id, args FROM procrastinate_jobs WHERE id = %(id)s
                UNION
                SELECT id, args FROM procrastinate_jobs
                WHERE queueing_lock IS NOT NULL AND queueing_lock = ANY(ARRAY(
                    SELECT 'org:' || o.id || ':' || %(key)s FROM organizations o
                    WHERE %(org)s::bigint IS NULL OR o.id = %(org)s))
            ) j
            WHERE %(org)s::text IS NULL OR j.args ->> 'organization_id' = %(org)s::text
            ORDER BY j.id DESC LIMIT %(limit)s
            """,
            {"id": job_id, "key": key, "org": organization, "limit": limit},
        ).fetchall()
    return [row[0] for row in rows]
