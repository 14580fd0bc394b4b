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


def like_prefix(text: str) -> str:
    """A LIKE pattern matching what starts with ``text`` (its wildcards taken literally)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_entries(
    conn: psycopg.Connection,
    *,
    organization_id: int | None = None,
    action: str | None = None,
    actor: str | None = None,
    actor_prefix: bool = False,
    hidden_action: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[dict]:
    """Entries newest first, filtered, after the ``before_id`` cursor; ``actor`` matches
    the actor's label exactly, or its start with ``actor_prefix``; ``hidden_action``'s
    entries are left out."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT id, at, actor_type, actor_id, actor_label, organization_id, action,
                   target_type, target_id, ip, details
            FROM audit_log
            WHERE (%(org)s::bigint IS NULL OR organization_id = %(org)s)
              AND (%(action)s::text IS NULL OR action = %(action)s)
              AND (%(hidden)s::text IS NULL OR action <> %(hidden)s)
              AND (%(actor)s::text IS NULL OR actor_label = %(actor)s)
              AND (%(pattern)s::text IS NULL OR actor_label LIKE %(pattern)s)
              AND (%(before)s::bigint IS NULL OR id < %(before)s)
            ORDER BY id DESC LIMIT %(limit)s
            """,
            {
                "org": organization_id,
                "action": action,
                "hidden": hidden_action,
                "actor": None if actor_prefix else actor,
                "pattern": like_prefix(actor) if actor_prefix and actor else None,
                "before": before_id,
                "limit": limit,
            },
        ).fetchall()


def list_actions(
    conn: psycopg.Connection, organization_id: int | None, hidden_action: str | None = None
) -> list[str]:
    """The actions on record, of one organization or (``None``) of all, in order: one
    index probe per action (a loose index scan), not a pass over the whole log."""
    rows = conn.execute(
        """
        WITH RECURSIVE present AS (
            (SELECT action FROM audit_log
             WHERE %(org)s::bigint IS NULL OR organization_id = %(org)s
             ORDER BY action LIMIT 1)
            UNION ALL
            SELECT (SELECT a.action FROM audit_log a
                    WHERE a.action > p.action
                      AND (%(org)s::bigint IS NULL OR a.organization_id = %(org)s)
                    ORDER BY a.action LIMIT 1)
            FROM present p WHERE p.action IS NOT NULL
        )
        SELECT action FROM present
        WHERE action IS NOT NULL AND (%(hidden)s::text IS NULL OR action <> %(hidden)s)
        """,
        {"org": organization_id, "hidden": hidden_action},
    ).fetchall()
    return [row[0] for row in rows]


def lock_sign_ins(conn: psycopg.Connection, email: str) -> None:
    """Take this account's sign-in lock until the transaction ends, so that tries at one
    account are counted, checked and recorded one after another."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('login:' || %s, 0))", (email,))


def sign_in_history(
    conn: psycopg.Connection,
    email: str,
    ip: str | None,
    *,
    pair_seconds: int,
    window_seconds: int,
    known_days: int,
) -> dict:
    """Failed sign-ins for this account from this address in the last ``pair_seconds``,
    and for the account and for the address in the last ``window_seconds``, with the
    seconds until each block lifts by itself; and whether the account signed in from
    this address in the last ``known_days``."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            WITH failures AS (
                SELECT at, target_id = %(email)s AS account, ip = %(ip)s AS address
                FROM audit_log
                WHERE action = 'login.failed'
                  AND at > now() - make_interval(secs => %(window)s)
                  AND (target_id = %(email)s OR ip = %(ip)s)
            )
            SELECT
                count(*) FILTER (WHERE account AND address
                                 AND at > now() - make_interval(secs => %(pair)s)) AS by_pair,
                extract(epoch FROM min(at) FILTER (
                    WHERE account AND address AND at > now() - make_interval(secs => %(pair)s))
                    + make_interval(secs => %(pair)s) - now())::float AS pair_wait,
                count(*) FILTER (WHERE account) AS by_account,
                extract(epoch FROM now() - max(at) FILTER (WHERE account))::float
                    AS since_account_failure,
                count(*) FILTER (WHERE address) AS by_address,
                extract(epoch FROM min(at) FILTER (WHERE address)
                    + make_interval(secs => %(window)s) - now())::float AS address_wait,
                EXISTS (
                    SELECT 1 FROM audit_log
                    WHERE action = 'login.succeeded' AND target_id = %(email)s
                      AND ip = %(ip)s AND at > now() - make_interval(days => %(known)s)
                ) AS known_address
            FROM failures
            """,
            {
                "email": email,
                "ip": ip,
                "pair": pair_seconds,
                "window": window_seconds,
                "known": known_days,
            },
        ).fetchone()
