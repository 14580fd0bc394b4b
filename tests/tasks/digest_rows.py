"""Rows a digest reads, written as the worker and the SMS task write them."""

import datetime
import itertools
import json

UNTIL = datetime.datetime(2026, 3, 9, 8, 0, tzinfo=datetime.UTC)  # 09:00 in Berlin
HOUR = datetime.timedelta(hours=1)
_sms_jobs = itertools.count(1_000_000)  # sms_messages.job_id is unique, with no key


def insert_sms(conn, organization_id: int, status: str, created_at: datetime.datetime) -> None:
    """One SMS message record."""
    conn.execute(
        "INSERT INTO sms_messages (organization_id, job_id, provider, to_number, segments,"
        " status, created_at) VALUES (%s, %s, 'telnyx', '+14155550123', 1, %s, %s)",
        (organization_id, next(_sms_jobs), status, created_at),
    )


def insert_job(conn, organization_id: int, task: str, status: str, queue: str = "default") -> int:
    """A job of the organization, deferred through Procrastinate's function, set to ``status``."""
    job_id = conn.execute(
        "SELECT (procrastinate_defer_jobs_v1(ARRAY[ROW(%s, %s, 0, NULL, NULL, %s::jsonb, NULL)"
        "::procrastinate_job_to_defer_v1]))[1]",
        (queue, task, json.dumps({"organization_id": organization_id})),
    ).fetchone()[0]
    if status != "todo":
        conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (job_id,))
        conn.execute("UPDATE procrastinate_jobs SET status = %s WHERE id = %s", (status, job_id))
    return job_id


def insert_attempt(
    conn,
    job_id: int,
    attempt: int,
    finished_at: datetime.datetime,
    error: tuple[str, str] | None,
    organization_id: int,
    task: str,
) -> None:
    """One run of a job, as the worker records it: failed with ``error`` (class, message),
    or succeeded without one."""
    error_class, message = error or (None, None)
    conn.execute(
        "INSERT INTO job_attempts (job_id, attempt, worker_name, outcome, started_at,"
        " finished_at, error_class, error_message, task_name, queue_name, organization_id)"
        " VALUES (%s, %s, 'w', %s, %s, %s, %s, %s, %s, 'default', %s)",
        (
            job_id,
            attempt,
            "failed" if error else "succeeded",
            finished_at - datetime.timedelta(seconds=1),
            finished_at,
            error_class,
            message,
            task,
            organization_id,
        ),
    )


def failed_job(conn, organization_id, task, errors, finished_at, status="failed") -> int:
    """A job whose runs failed with ``errors`` in turn (None: a run that succeeded)."""
    job_id = insert_job(conn, organization_id, task, status)
    for attempt, error in enumerate(errors, start=1):
        at = finished_at + datetime.timedelta(minutes=attempt)
        insert_attempt(conn, job_id, attempt, at, error, organization_id, task)
    return job_id


def insert_subscription(conn, organization_id=1, **columns) -> int:
    """A digest subscription (daily at 09:00 in Berlin, unless told otherwise)."""
    values = {
        "recipients": ["ops@example.com"],
        "frequency": "daily",
        "weekday": 1,
        "hour": 9,
        "time_zone": "Europe/Berlin",
        "created_at": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        **columns,
    }
    names = ", ".join(values)
    marks = ", ".join(f"%({name})s" for name in values)
    return conn.execute(
        f"INSERT INTO digest_subscriptions (organization_id, {names})"
        f" VALUES (%(org)s, {marks}) RETURNING id",
        {"org": organization_id, **values},
    ).fetchone()[0]


def week_of_activity(conn) -> None:
    """Organization 1's (Acme's) activity around the day before ``UNTIL``, and noise: the
    same kinds of rows outside the day, or of organization 2.

    In the day: SMS sent 5 (3 delivered), failed 2, 1 pending, 1 logged; 2 jobs failed,
    in 4 failed runs of 2 kinds of error.
    """
    day = UNTIL - datetime.timedelta(hours=20)
    for status in ["delivered"] * 3 + ["sent", "queued", "failed", "delivery_failed"]:
        insert_sms(conn, 1, status, day)
    insert_sms(conn, 1, "pending", UNTIL - datetime.timedelta(seconds=1))
    insert_sms(conn, 1, "logged", UNTIL - datetime.timedelta(days=1))  # the first instant
    insert_sms(conn, 1, "delivered", UNTIL)  # the next period's
    insert_sms(conn, 1, "delivered", UNTIL - datetime.timedelta(days=2))
    insert_sms(conn, 2, "failed", day)
    invalid = ("ProviderError", "invalid number +14155550123")
    again = ("ProviderError", "invalid number +14155550199")
    failed_job(conn, 1, "sms:send_notification", [invalid, again], day)
    failed_job(conn, 1, "sms:send_notification", [invalid], day + HOUR)
    timeout = ("TimeoutError", "timed out")
    failed_job(conn, 1, "email:send_digest", [timeout, None], day, "succeeded")  # then ran
    failed_job(conn, 1, "email:send_digest", [("OSError", "refused")], UNTIL - 3 * 24 * HOUR)
    failed_job(conn, 2, "sms:send_notification", [invalid], day)
