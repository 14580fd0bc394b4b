"""Jobs, attempts and workers written straight into the tables, for the job pages' tests."""

import json

import psycopg

SMS = "sms:send_notification"


def sms_args(organization_id: int = 1, **extra) -> dict:
    return {"organization_id": organization_id, "to": "+14155550123", "body": "hi", **extra}


def add_job(
    conn: psycopg.Connection,
    *,
    organization_id: int | None = 1,
    task: str = SMS,
    queue: str = "sms-notifications",
    status: str = "todo",
    priority: int = 0,
    lock: str | None = None,
    scheduled: str | None = None,
    args: dict | None = None,
    worker_id: int | None = None,
) -> int:
    """Insert a job (deferred, through Procrastinate's function) and set its status."""
    args = args if args is not None else sms_args(organization_id)
    job_id = conn.execute(
        "SELECT (procrastinate_defer_jobs_v1(ARRAY[ROW(%s, %s, %s, %s, NULL, %s::jsonb,"
        " %s::timestamptz)::procrastinate_job_to_defer_v1]))[1]",
        (queue, task, priority, lock, json.dumps(args), scheduled),
    ).fetchone()[0]
    if status != "todo":
        conn.execute(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE id = %s",
            (worker_id, job_id),
        )
    if status not in ("todo", "doing"):
        conn.execute("UPDATE procrastinate_jobs SET status = %s WHERE id = %s", (status, job_id))
    return job_id


def add_attempt(conn, job_id: int, attempt: int = 1, outcome: str = "failed") -> None:
    conn.execute(
        "INSERT INTO job_attempts (job_id, attempt, worker_name, outcome, started_at,"
        " finished_at, error_class, error_message, traceback) VALUES (%s, %s, 'worker-a',"
        " %s, now() - interval '3 seconds', now(), 'ProviderDown', 'the SMS provider is down',"
        " 'Traceback (most recent call last):\n  File \"/srv/secret/path.py\"')",
        (job_id, attempt, outcome),
    )


def add_worker(
    conn, name: str = "worker-a", queues=None, concurrency: int = 1, silent: bool = False
) -> int:
    """A registered worker; ``silent``: its heartbeat is an hour old."""
    worker_id = conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()[0]
    conn.execute(
        "INSERT INTO worker_registry (worker_id, name, queues, concurrency)"
        " VALUES (%s, %s, %s, %s)",
        (worker_id, name, queues, concurrency),
    )
    if silent:
        conn.execute(
            "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour'"
            " WHERE id = %s",
            (worker_id,),
        )
    return worker_id


def status_of(conn, job_id: int) -> str | None:
    row = conn.execute(
        "SELECT status::text FROM procrastinate_jobs WHERE id = %s", (job_id,)
    ).fetchone()
    return None if row is None else row[0]


def audit_rows(conn, action: str) -> list[tuple]:
    return conn.execute(
        "SELECT target_id, organization_id, details FROM audit_log WHERE action = %s ORDER BY id",
        (action,),
    ).fetchall()
