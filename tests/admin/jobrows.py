"""Jobs and attempt records written straight into the database, for the admin pages' tests."""

import datetime
import json

import psycopg

from tasks import queues

SMS_TASK = "sms:send_notification"
DIGEST_TASK = "digests:send_digest"


def add_job(
    conn: psycopg.Connection,
    organization_id: int | None,
    task: str = SMS_TASK,
    *,
    queue: str = queues.SMS,
    status: str = "failed",
    scheduled_in: datetime.timedelta | None = None,
) -> int:
    """A job row in ``status`` (for ``None`` organization: a housekeeping job); its id."""
    args = {} if organization_id is None else {"organization_id": organization_id}
    scheduled_at = (
        None if scheduled_in is None else datetime.datetime.now(datetime.UTC) + scheduled_in
    )
    return conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, scheduled_at)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (queue, task, json.dumps(args), status, scheduled_at),
    ).fetchone()[0]


def add_attempt(
    conn: psycopg.Connection,
    job_id: int,
    *,
    ago: datetime.timedelta = datetime.timedelta(minutes=5),
    outcome: str = "failed",
    error_class: str | None = "TimeoutError",
    message: str | None = "timeout after 31 s for +14155550123",
    attempt: int | None = None,
) -> None:
    """An attempt of ``job_id`` that finished ``ago``; by default a failed one."""
    finished = datetime.datetime.now(datetime.UTC) - ago
    if outcome != "failed":
        error_class = message = None
    conn.execute(
        "INSERT INTO job_attempts (job_id, attempt, worker_name, outcome, started_at,"
        " finished_at, error_class, error_message)"
        " VALUES (%s, coalesce(%s, (SELECT count(*) + 1 FROM job_attempts WHERE job_id = %s)),"
        " 'w1', %s, %s, %s, %s, %s)",
        (
            job_id,
            attempt,
            job_id,
            outcome,
            finished - datetime.timedelta(seconds=1),
            finished,
            error_class,
            message,
        ),
    )
