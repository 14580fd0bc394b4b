"""Bulk actions on jobs: one batch of a cancel, retry or delete, and the bulk_actions rows
that track the ones run in the background (migration 0019).

A batch takes the next ``limit`` matching jobs below a cursor, newest first, and acts
on those its rule still allows: the rule is checked again in the UPDATE's or DELETE's
own WHERE, which PostgreSQL re-evaluates on a row another transaction changed meanwhile,
so a job that moved on is skipped and a batch done twice acts on nothing twice. The
organization is part of every WHERE: an operator's action touches their jobs only.
"""

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from webapp.store import job_search

FINISHED = "('succeeded', 'failed', 'cancelled', 'aborted')"
SCOPE = "(%(scope)s::text IS NULL OR j.args ->> 'organization_id' = %(scope)s::text)"

# Each action: the statements after the ``batch`` CTE, and the count of jobs acted on.
# Cancel: a waiting job becomes cancelled; a running one is asked to abort (as
# QueueService.cancel does), once.
CANCEL = f"""
    acted AS (
        UPDATE procrastinate_jobs j
        SET status = CASE WHEN j.status = 'todo' THEN 'cancelled'::procrastinate_job_status
                          ELSE j.status END,
            abort_requested = j.status = 'doing'
        FROM batch b
        WHERE j.id = b.id AND {SCOPE}
          AND (j.status = 'todo' OR (j.status = 'doing' AND NOT j.abort_requested))
        RETURNING j.status
    )
    SELECT (SELECT count(*) FROM batch) AS seen, (SELECT min(id) FROM batch) AS last_id,
           (SELECT count(*) FROM acted) AS acted,
           (SELECT count(*) FROM acted WHERE status = 'doing') AS aborting
"""
# Retry, as QueueService.retry: a failed job goes back to its queue; a cancelled or
# aborted one is copied as a new job, once (job_retries). A job whose idempotency key a
# waiting job holds is skipped, and of jobs sharing a key only the newest goes.
RETRY = f"""
    eligible AS (
        SELECT DISTINCT ON (coalesce(j.queueing_lock, j.id::text)) j.id, j.status
        FROM procrastinate_jobs j JOIN batch b ON b.id = j.id
        WHERE j.status IN ('failed', 'cancelled', 'aborted')
          AND NOT EXISTS (SELECT 1 FROM job_retries r WHERE r.job_id = j.id)
          AND NOT j.task_name = ANY(%(platform_tasks)s)
          AND (j.queueing_lock IS NULL OR NOT EXISTS (
              SELECT 1 FROM procrastinate_jobs w
              WHERE w.queueing_lock = j.queueing_lock AND w.status = 'todo'))
        ORDER BY coalesce(j.queueing_lock, j.id::text), j.id DESC
    ), requeued AS (
        UPDATE procrastinate_jobs j
        SET status = 'todo', scheduled_at = now(), abort_requested = false
        FROM eligible e
        WHERE j.id = e.id AND e.status = 'failed' AND j.status = 'failed' AND {SCOPE}
        RETURNING j.id
    ), copied AS (
        INSERT INTO job_retries (job_id, retry_job_id)
        SELECT j.id, (procrastinate_defer_jobs_v1(ARRAY[ROW(
                j.queue_name, j.task_name, j.priority, NULL, j.queueing_lock, j.args, NULL
            )::procrastinate_job_to_defer_v1]))[1]
        FROM eligible e JOIN procrastinate_jobs j ON j.id = e.id
        WHERE e.status IN ('cancelled', 'aborted') AND {SCOPE}
        RETURNING job_id
    )
    SELECT (SELECT count(*) FROM batch) AS seen, (SELECT min(id) FROM batch) AS last_id,
           (SELECT count(*) FROM requeued) + (SELECT count(*) FROM copied) AS acted,
           0 AS aborting
"""
# Delete a finished job with its attempts (its events and retry links go by cascade).
DELETE = f"""
    gone AS (
        DELETE FROM procrastinate_jobs j USING batch b
        WHERE j.id = b.id AND {SCOPE} AND j.status IN {FINISHED}
        RETURNING j.id
    ), attempts AS (
        DELETE FROM job_attempts a USING gone WHERE a.job_id = gone.id
    )
    SELECT (SELECT count(*) FROM batch) AS seen, (SELECT min(id) FROM batch) AS last_id,
           (SELECT count(*) FROM gone) AS acted, 0 AS aborting
"""
ACTIONS = {"cancel": CANCEL, "retry": RETRY, "delete": DELETE}


def batch_query(
    action: str, jobs: job_search.JobFilter, limit: int, platform_tasks: list[str]
) -> tuple[str, dict]:
    """One batch's statement and parameters: ``jobs`` (its ``below_id`` is the cursor)."""
    condition, values = job_search.where(jobs)
    scope = None if jobs.organization is None else str(jobs.organization)
    query = (
        "WITH batch AS (SELECT j.id FROM procrastinate_jobs j"
        f" WHERE {condition} ORDER BY j.id DESC LIMIT %(limit)s), {ACTIONS[action]}"
    )
    return query, {**values, "limit": limit, "scope": scope, "platform_tasks": platform_tasks}


def apply_batch(
    conn: psycopg.Connection,
    action: str,
    jobs: job_search.JobFilter,
    limit: int,
    platform_tasks: list[str],
) -> dict:
    """Act on the next ``limit`` matching jobs: ``{seen, last_id, acted, aborting}``.
    ``platform_tasks``: tasks this caller may not retry."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(*batch_query(action, jobs, limit, platform_tasks)).fetchone()


async def apply_batch_async(
    conn: psycopg.AsyncConnection,
    action: str,
    jobs: job_search.JobFilter,
    limit: int,
    platform_tasks: list[str],
) -> dict:
    """``apply_batch`` for the worker."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(*batch_query(action, jobs, limit, platform_tasks))
        return await cur.fetchone()


def selection(row: dict) -> job_search.JobFilter:
    """The jobs a bulk_actions row acts on, below its cursor."""
    chosen = row["filter"] or {}
    return job_search.JobFilter(
        organization=row["organization_id"],
        ids=row["job_ids"],
        below_id=row["cursor"],
        **{name: chosen.get(name) for name in job_search.KEPT_FILTERS},
    )


def insert_bulk_action(conn: psycopg.Connection, row: dict) -> int:
    """Record a bulk action about to run in the background; returns its id."""
    return conn.execute(
        """
        INSERT INTO bulk_actions (organization_id, requested_by_id, requested_by_label,
            platform, action, filter, job_ids, max_id, cursor, total, counted)
        VALUES (%(organization_id)s, %(requested_by_id)s, %(requested_by_label)s,
            %(platform)s, %(action)s, %(filter)s, %(job_ids)s, %(max_id)s, %(cursor)s,
            %(total)s, %(counted)s)
        RETURNING id
        """,
        {**row, "filter": None if row["filter"] is None else Jsonb(row["filter"])},
    ).fetchone()[0]


def get_bulk_action(
    conn: psycopg.Connection, bulk_id: int, organization_id: int | None
) -> dict | None:
    """A bulk action, if it is in scope (``None``: any)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM bulk_actions WHERE id = %(id)s"
            " AND (%(org)s::bigint IS NULL OR organization_id = %(org)s)",
            {"id": bulk_id, "org": organization_id},
        ).fetchone()


def cancel_bulk_action(conn: psycopg.Connection, bulk_id: int, organization_id: int | None) -> bool:
    """Stop a running bulk action: its next batch does not start (one under way ends
    first, as this waits for its row lock). False if it is not running."""
    row = conn.execute(
        "UPDATE bulk_actions SET cancel_requested = true, status = 'cancelled',"
        " finished_at = now() WHERE id = %(id)s AND status = 'running'"
        " AND (%(org)s::bigint IS NULL OR organization_id = %(org)s) RETURNING id",
        {"id": bulk_id, "org": organization_id},
    ).fetchone()
    return row is not None


async def lock_bulk_action(conn: psycopg.AsyncConnection, bulk_id: int) -> dict | None:
    """A bulk action's row, locked until the batch that reads it commits."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM bulk_actions WHERE id = %s FOR UPDATE", (bulk_id,))
        return await cur.fetchone()


async def record_total(conn: psycopg.AsyncConnection, bulk_id: int, total: int) -> None:
    """Set a bulk action's exact total, once counted."""
    await conn.execute(
        "UPDATE bulk_actions SET total = %s, counted = true WHERE id = %s", (total, bulk_id)
    )


async def record_progress(
    conn: psycopg.AsyncConnection, bulk_id: int, batch: dict, finished: bool
) -> None:
    """Count a batch on its bulk action, move its cursor on, and end it if ``finished``."""
    await conn.execute(
        """
        UPDATE bulk_actions SET done = done + %(acted)s, skipped = skipped + %(skipped)s,
            cursor = coalesce(%(last_id)s, cursor),
            status = CASE WHEN %(finished)s THEN 'succeeded' ELSE status END,
            finished_at = CASE WHEN %(finished)s THEN now() END
        WHERE id = %(id)s AND status = 'running'
        """,
        {
            "id": bulk_id,
            "acted": batch["acted"],
            "skipped": batch["seen"] - batch["acted"],
            "last_id": batch["last_id"],
            "finished": finished,
        },
    )


async def fail_bulk_action(conn: psycopg.AsyncConnection, bulk_id: int, error: str) -> None:
    """End a bulk action that could not go on, with the reason."""
    await conn.execute(
        "UPDATE bulk_actions SET status = 'failed', error = %s, finished_at = now()"
        " WHERE id = %s AND status = 'running'",
        (error, bulk_id),
    )
