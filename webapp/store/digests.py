"""What an organization's email digest reads: its activity over a period, and who got it."""

import datetime

import psycopg
from psycopg.rows import dict_row

# How the digest groups an SMS's status (migration 0024). "Sent" is every message the
# provider accepted and has not reported lost, so delivered ones count as sent too;
# "failed" is refused at once, failed in sending or reported undelivered. Messages
# still pending, whose outcome is unknown (their request got no answer), or only logged
# by the console provider, are neither.
SMS_SENT = ("queued", "sending", "sent", "delivered", "delivery_unconfirmed")
SMS_DELIVERED = ("delivered",)
SMS_FAILED = ("failed", "sending_failed", "delivery_failed")

COUNT_MESSAGES = """
    SELECT count(*) AS total,
           count(*) FILTER (WHERE status = ANY(%(sent)s)) AS sent,
           count(*) FILTER (WHERE status = ANY(%(delivered)s)) AS delivered,
           count(*) FILTER (WHERE status = ANY(%(failed)s)) AS failed,
           count(*) FILTER (WHERE status = 'pending') AS pending,
           count(*) FILTER (WHERE status = 'unknown') AS unknown,
           count(*) FILTER (WHERE status = 'logged') AS logged
      FROM sms_messages
     WHERE organization_id = %(org)s AND created_at >= %(since)s AND created_at < %(until)s
"""

# The organization's failure groups seen in the period (last_seen is kept to within a
# minute, hence the margin), each with its failed runs in the period and the jobs that
# ended there: failed now, with that run as their last. Read through the partial index
# on (failure_group_id, finished_at), as the failures page does. The window sums run
# before the LIMIT, so every row carries the period's totals.
LIST_FAILURES = """
    SELECT g.task_name, g.error_class, g.error_key, g.pattern, r.runs, r.jobs,
           sum(r.runs) OVER () AS total_runs, sum(r.jobs) OVER () AS total_jobs,
           count(*) OVER () AS total_groups
      FROM failure_groups g
     CROSS JOIN LATERAL (
          SELECT count(*) AS runs,
                 count(*) FILTER (
                     WHERE j.status = 'failed' AND NOT EXISTS (
                         SELECT 1 FROM job_attempts later
                          WHERE later.job_id = a.job_id AND later.attempt > a.attempt)
                 ) AS jobs
            FROM job_attempts a
            LEFT JOIN procrastinate_jobs j ON j.id = a.job_id
           WHERE a.failure_group_id = g.id
             AND a.finished_at >= %(since)s AND a.finished_at < %(until)s
     ) r
     WHERE g.organization_id = %(org)s AND NOT g.housekeeping
       AND g.last_seen >= %(since)s - interval '1 minute' AND r.runs > 0
     ORDER BY r.jobs DESC, r.runs DESC, g.task_name, g.id
     LIMIT %(limit)s
"""


async def count_messages(
    conn: psycopg.AsyncConnection,
    organization_id: int,
    since: datetime.datetime,
    until: datetime.datetime,
) -> dict:
    """The organization's SMS messages created in [since, until), counted by outcome."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            COUNT_MESSAGES,
            {
                "org": organization_id,
                "since": since,
                "until": until,
                "sent": list(SMS_SENT),
                "delivered": list(SMS_DELIVERED),
                "failed": list(SMS_FAILED),
            },
        )
        return await cur.fetchone()


async def list_failures(
    conn: psycopg.AsyncConnection,
    organization_id: int,
    since: datetime.datetime,
    until: datetime.datetime,
    limit: int,
) -> list[dict]:
    """The ``limit`` failure groups with the most failed jobs in [since, until), each row
    with the period's totals (``total_runs``, ``total_jobs``, ``total_groups``)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            LIST_FAILURES,
            {"org": organization_id, "since": since, "until": until, "limit": limit},
        )
        return await cur.fetchall()


async def get_organization_name(conn: psycopg.AsyncConnection, organization_id: int) -> str | None:
    """The organization's name; None if there is no such organization."""
    cursor = await conn.execute("SELECT name FROM organizations WHERE id = %s", (organization_id,))
    row = await cursor.fetchone()
    return None if row is None else row[0]


async def get_subscription_time_zone(
    conn: psycopg.AsyncConnection, subscription_id: int, organization_id: int
) -> str | None:
    """The time zone of the organization's subscription; None if it is gone."""
    cursor = await conn.execute(
        "SELECT time_zone FROM digest_subscriptions WHERE id = %s AND organization_id = %s",
        (subscription_id, organization_id),
    )
    row = await cursor.fetchone()
    return None if row is None else row[0]


async def list_deliveries(conn: psycopg.AsyncConnection, job_id: int) -> dict[str, str]:
    """The recipients this job has already sent to or been refused for, with the outcome."""
    cursor = await conn.execute(
        "SELECT recipient, outcome FROM digest_deliveries WHERE job_id = %s", (job_id,)
    )
    return dict(await cursor.fetchall())


async def insert_delivery(
    conn: psycopg.AsyncConnection,
    job_id: int,
    recipient: str,
    outcome: str,
    smtp_code: int | None = None,
) -> None:
    """Record what became of the job's message to one recipient (once: a repeat is ignored)."""
    await conn.execute(
        "INSERT INTO digest_deliveries (job_id, recipient, outcome, smtp_code)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (job_id, recipient, outcome, smtp_code),
    )
