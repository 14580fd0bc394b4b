"""The digest scheduler's statements: read the subscriptions, claim a period for one.

A period is claimed by moving the subscription's last_period forward, only if it is
older (migration 0026). The scheduler claims and defers the digest in one
transaction: the row stays locked until it commits, so a second scheduler claiming
the same period waits, then finds last_period moved and claims nothing.
"""

import datetime

import psycopg
from psycopg.rows import dict_row

SCHEDULE_COLUMNS = (
    "id, organization_id, recipients, frequency, weekday, hour, time_zone, last_period, created_at"
)


async def list_subscriptions(
    conn: psycopg.AsyncConnection, after_id: int, limit: int
) -> list[dict]:
    """The next ``limit`` subscriptions by id after ``after_id``, with their schedules."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {SCHEDULE_COLUMNS} FROM digest_subscriptions"
            " WHERE id > %s ORDER BY id LIMIT %s",
            (after_id, limit),
        )
        return await cur.fetchall()


async def claim_period(
    conn: psycopg.AsyncConnection, subscription_id: int, period: datetime.date
) -> dict | None:
    """Set the subscription's last_period to ``period`` if it is older; the row as it is
    now (locked until the transaction ends), or None if the period was claimed already."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "UPDATE digest_subscriptions SET last_period = %(period)s"
            " WHERE id = %(id)s AND (last_period IS NULL OR last_period < %(period)s)"
            f" RETURNING {SCHEDULE_COLUMNS}",
            {"id": subscription_id, "period": period},
        )
        return await cur.fetchone()


async def set_last_job(conn: psycopg.AsyncConnection, subscription_id: int, job_id: int) -> None:
    """Note the digest job deferred for the subscription's last period."""
    await conn.execute(
        "UPDATE digest_subscriptions SET last_job_id = %s WHERE id = %s",
        (job_id, subscription_id),
    )
