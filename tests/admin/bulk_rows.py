"""Jobs in every state, written straight into Procrastinate's table as any program could,
for the job list and bulk action tests."""

import json
import re

import psycopg

# How each state of the pages is reached from 'todo', through Procrastinate's triggers
# (so the events a worker would leave are there too).
PATHS = {
    "waiting": [],
    "scheduled": [],
    "running": ["doing"],
    "succeeded": ["doing", "succeeded"],
    "failed": ["doing", "failed"],
    "cancelled": ["cancelled"],
    "aborted": ["doing", "aborted"],
}
TASKS = {"sms-notifications": "sms:send_notification", "email-digests": "email:send_digest"}


def add_jobs(
    conn: psycopg.Connection,
    count: int = 1,
    *,
    organization: int | None = 1,
    state: str = "waiting",
    queue: str = "sms-notifications",
    task: str | None = None,
    key: str | None = None,
) -> list[int]:
    """Insert ``count`` jobs in one statement, in ``state``; returns their ids, oldest first."""
    args = {} if organization is None else {"organization_id": organization, "to": "+1555"}
    rows = conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, queueing_lock, scheduled_at)"
        " SELECT %s, %s, %s::jsonb, %s, %s FROM generate_series(1, %s) RETURNING id",
        (
            queue,
            task or TASKS.get(queue, "diagnostics:noop"),
            json.dumps(args),
            None if key is None else f"org:{organization}:{key}",
            None,
            count,
        ),
    ).fetchall()
    ids = [row[0] for row in rows]
    if state == "scheduled":
        conn.execute(
            "UPDATE procrastinate_jobs SET scheduled_at = now() + interval '1 hour'"
            " WHERE id = ANY(%s)",
            (ids,),
        )
    for status in PATHS[state]:
        conn.execute("UPDATE procrastinate_jobs SET status = %s WHERE id = ANY(%s)", (status, ids))
    return ids


def status_of(conn: psycopg.Connection, ids: list[int]) -> dict[int, str]:
    """Each job's Procrastinate status (a deleted job is missing)."""
    rows = conn.execute(
        "SELECT id, status::text FROM procrastinate_jobs WHERE id = ANY(%s)", (ids,)
    ).fetchall()
    return dict(rows)


def listed_ids(page: str) -> list[int]:
    """The job ids a list page links to, in page order."""
    return [int(i) for i in re.findall(r'href="/admin/queues/jobs/(\d+)[?"]', page)]
