"""Digest subscriptions, as people manage them: list, read, create, change, delete.

Every function is scoped to an organization; ``None`` means every organization (a
platform admin's view), except in ``insert_subscription``, which always names one.
The scheduler's own columns (``last_period``, ``last_job_id``) are never written here.
"""

import psycopg
from psycopg.rows import dict_row

COLUMNS = (
    "s.id, s.organization_id, o.name AS organization_name, s.recipients, s.frequency,"
    " s.weekday, s.hour, s.time_zone, s.last_period, s.last_job_id, s.created_at,"
    " s.updated_at"
)
FROM = "digest_subscriptions s JOIN organizations o ON o.id = s.organization_id"
IN_SCOPE = "(%(org)s::bigint IS NULL OR s.organization_id = %(org)s)"


def list_subscriptions(
    conn: psycopg.Connection,
    organization_id: int | None,
    limit: int,
    before_id: int | None = None,
) -> list[dict]:
    """Subscriptions newest first, below ``before_id`` when given, at most ``limit``."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {COLUMNS} FROM {FROM} WHERE {IN_SCOPE}"
            " AND (%(before)s::bigint IS NULL OR s.id < %(before)s)"
            " ORDER BY s.id DESC LIMIT %(limit)s",
            {"org": organization_id, "before": before_id, "limit": limit},
        ).fetchall()


def get_subscription(
    conn: psycopg.Connection, subscription_id: int, organization_id: int | None
) -> dict | None:
    """A subscription, if it belongs to the organization; None otherwise."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {COLUMNS} FROM {FROM} WHERE s.id = %(id)s AND {IN_SCOPE}",
            {"id": subscription_id, "org": organization_id},
        ).fetchone()


def insert_subscription(conn: psycopg.Connection, organization_id: int, fields: dict) -> dict:
    """Store a new subscription of the organization; ``fields`` as the model dumps them."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "WITH s AS (INSERT INTO digest_subscriptions"
            " (organization_id, recipients, frequency, weekday, hour, time_zone)"
            " VALUES (%(org)s, %(recipients)s, %(frequency)s, %(weekday)s, %(hour)s,"
            " %(time_zone)s) RETURNING *)"
            f" SELECT {COLUMNS} FROM s JOIN organizations o ON o.id = s.organization_id",
            {**fields, "org": organization_id},
        ).fetchone()


def update_subscription(
    conn: psycopg.Connection, subscription_id: int, organization_id: int | None, fields: dict
) -> dict | None:
    """Replace what a person sets on a subscription in the organization; None if there is
    no such subscription. The period last deferred stays, so no period is sent twice."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "WITH s AS (UPDATE digest_subscriptions s SET recipients = %(recipients)s,"
            " frequency = %(frequency)s, weekday = %(weekday)s, hour = %(hour)s,"
            " time_zone = %(time_zone)s, updated_at = now()"
            f" WHERE s.id = %(id)s AND {IN_SCOPE} RETURNING s.*)"
            f" SELECT {COLUMNS} FROM s JOIN organizations o ON o.id = s.organization_id",
            {**fields, "id": subscription_id, "org": organization_id},
        ).fetchone()


def delete_subscription(
    conn: psycopg.Connection, subscription_id: int, organization_id: int | None
) -> dict | None:
    """Delete a subscription of the organization; return its id and organization, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"DELETE FROM digest_subscriptions s WHERE s.id = %(id)s AND {IN_SCOPE}"
            " RETURNING s.id, s.organization_id, s.frequency",
            {"id": subscription_id, "org": organization_id},
        ).fetchone()
