"""The audit log: who did what, to which target, when and from where."""

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb


def insert_entry(conn: psycopg.Connection, entry: dict) -> None:
    """Append one entry (keys: actor_type, actor_id, actor_label, organization_id, action,
    target_type, target_id, ip, details)."""
    conn.execute(
        """
        INSERT INTO audit_log (actor_type, actor_id, actor_label, organization_id, action,
                               target_type, target_id, ip, details)
        VALUES (%(actor_type)s, %(actor_id)s, %(actor_label)s, %(organization_id)s, %(action)s,
                %(target_type)s, %(target_id)s, %(ip)s, %(details)s)
        """,
        {**entry, "details": Jsonb(entry.get("details") or {})},
    )


def list_entries(
    conn: psycopg.Connection,
    *,
    organization_id: int | None = None,
    action: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[dict]:
    """Entries newest first, filtered, after the ``before_id`` cursor."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT id, at, actor_type, actor_id, actor_label, organization_id, action,
                   target_type, target_id, ip, details
            FROM audit_log
            WHERE (%(org)s::bigint IS NULL OR organization_id = %(org)s)
              AND (%(action)s::text IS NULL OR action = %(action)s)
              AND (%(before)s::bigint IS NULL OR id < %(before)s)
            ORDER BY id DESC LIMIT %(limit)s
            """,
            {"org": organization_id, "action": action, "before": before_id, "limit": limit},
        ).fetchall()


def count_recent_login_failures(
    conn: psycopg.Connection, email: str, ip: str | None, seconds: int
) -> dict:
    """Failed logins in the last ``seconds`` for this account and for this address,
    with when the oldest of each will leave the window."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT count(*) FILTER (WHERE target_id = %(email)s) AS by_account,
                   count(*) FILTER (WHERE ip = %(ip)s) AS by_ip,
                   extract(epoch FROM min(at) FILTER (WHERE target_id = %(email)s)
                           + make_interval(secs => %(seconds)s) - now())::float AS account_wait,
                   extract(epoch FROM min(at) FILTER (WHERE ip = %(ip)s)
                           + make_interval(secs => %(seconds)s) - now())::float AS ip_wait
            FROM audit_log
            WHERE action = 'login.failed' AND at > now() - make_interval(secs => %(seconds)s)
              AND (target_id = %(email)s OR ip = %(ip)s)
            """,
            {"email": email, "ip": ip, "seconds": seconds},
        ).fetchone()
