"""What a job's admin page reads and changes beyond ``store.jobs``: its lock and
attempt count, its events, deleting it, and deferring an edited copy of it."""

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from webapp.store import jobs

FINISHED = ("succeeded", "failed", "cancelled", "aborted")
MAX_EVENTS = 500  # a job's timeline; bounded, although a job seldom has more than a dozen


def get_job(conn: psycopg.Connection, job_id: int, organization_id: int | None) -> dict | None:
    """One job as ``store.jobs.get_job`` reads it, with its lock, attempts and worker."""
    with conn.cursor(row_factory=jobs.job_row) as cur:
        return cur.execute(
            f"SELECT {jobs.JOB_COLUMNS}, j.lock, j.attempts, j.worker_id"
            f" FROM procrastinate_jobs j {jobs.JOB_JOINS}"
            f" WHERE j.id = %(id)s AND {jobs.IN_SCOPE}",
            {"id": job_id, "org": None if organization_id is None else str(organization_id)},
        ).fetchone()


def list_events(conn: psycopg.Connection, job_id: int) -> list[dict]:
    """A job's events from Procrastinate, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT type::text AS type, at FROM procrastinate_events WHERE job_id = %s"
            " ORDER BY at, id LIMIT %s",
            (job_id, MAX_EVENTS),
        ).fetchall()


def get_sms_message(conn: psycopg.Connection, job_id: int) -> dict | None:
    """The SMS message a job sent or tried to send, with its latest delivery status."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT provider, to_number, segments, provider_message_id, status, error_code,"
            " error_message, created_at, accepted_at, status_at, updated_at"
            " FROM sms_messages WHERE job_id = %s",
            (job_id,),
        ).fetchone()


def unlink_periodic_defer(conn: psycopg.Connection, job_id: int) -> None:
    """Forget a finished job in the record of periodic deferrals (which refers to it),
    so that it can be deleted; the record itself stays, as Procrastinate's needs it."""
    conn.execute(
        """
        UPDATE procrastinate_periodic_defers SET job_id = NULL
        WHERE job_id = %(id)s AND EXISTS (
            SELECT 1 FROM procrastinate_jobs
            WHERE id = %(id)s AND status = ANY(%(finished)s::procrastinate_job_status[])
        )
        """,
        {"id": job_id, "finished": list(FINISHED)},
    )


def delete_finished_job(conn: psycopg.Connection, job_id: int) -> str | None:
    """Delete a finished job with its attempts (its events and retry links cascade), and
    return the status it had; None if it is not finished (or gone)."""
    row = conn.execute(
        """
        WITH gone AS (
            DELETE FROM procrastinate_jobs
            WHERE id = %(id)s AND status = ANY(%(finished)s::procrastinate_job_status[])
            RETURNING id, status::text AS status
        ), attempts AS (
            DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM gone)
        )
        SELECT status FROM gone
        """,
        {"id": job_id, "finished": list(FINISHED)},
    ).fetchone()
    return None if row is None else row[0]


def defer_edited_copy(conn: psycopg.Connection, job_id: int, args: dict) -> int:
    """Defer a new job with the task, queue, priority and idempotency key of ``job_id``
    but these arguments, and record it as that job's retry (as ``store.jobs.copy_job``
    does); returns the new id. Raises UniqueViolation if the job was retried before, or
    if a job with its idempotency key is waiting."""
    row = conn.execute(
        """
        WITH copy AS (
            SELECT (procrastinate_defer_jobs_v1(ARRAY[ROW(queue_name, task_name, priority,
                    NULL, queueing_lock, %(args)s, NULL)::procrastinate_job_to_defer_v1]))[1]
                    AS id
            FROM procrastinate_jobs WHERE id = %(id)s
        )
        INSERT INTO job_retries (job_id, retry_job_id) SELECT %(id)s, id FROM copy
        RETURNING retry_job_id
        """,
        {"id": job_id, "args": Jsonb(args)},
    ).fetchone()
    return row[0]
