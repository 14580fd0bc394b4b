"""API tokens: stored as a SHA-256 hash with a short visible prefix."""

import datetime

import psycopg
from psycopg.rows import dict_row

COLUMNS = (
    "t.id, t.organization_id, o.name AS organization_name, t.name, t.prefix,"
    " t.created_at, t.expires_at, t.last_used_at, t.revoked_at,"
    " CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked'"
    " WHEN t.expires_at <= now() THEN 'expired' ELSE 'active' END AS state"
)


def insert_token(
    conn: psycopg.Connection,
    organization_id: int | None,
    name: str,
    prefix: str,
    token_hash: str,
    expires_at: datetime.datetime | None,
) -> dict:
    """Store a new token (its hash only)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "INSERT INTO api_tokens (organization_id, name, prefix, token_hash, expires_at)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id, organization_id, name, prefix,"
            " created_at, expires_at",
            (organization_id, name, prefix, token_hash, expires_at),
        ).fetchone()


def get_token_by_hash(conn: psycopg.Connection, token_hash: str) -> dict | None:
    """A token by the hash of its secret, whether it is still valid, the seconds until it
    expires (None: never), and when last used."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, organization_id, prefix, last_used_at,"
            " (revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())) AS valid,"
            " extract(epoch FROM expires_at - now())::float8 AS seconds_left,"
            " (last_used_at IS NULL OR last_used_at < now() - interval '1 minute') AS stale_use"
            " FROM api_tokens WHERE token_hash = %s",
            (token_hash,),
        ).fetchone()


def touch_token(conn: psycopg.Connection, token_id: int) -> None:
    """Record that a token was just used."""
    conn.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = %s", (token_id,))


def list_tokens(
    conn: psycopg.Connection, organization_id: int | None = None, limit: int | None = None
) -> list[dict]:
    """Tokens, newest first; of one organization when given; the newest ``limit`` only
    when given."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {COLUMNS} FROM api_tokens t LEFT JOIN organizations o"
            " ON o.id = t.organization_id"
            " WHERE %(org)s::bigint IS NULL OR t.organization_id = %(org)s ORDER BY t.id DESC"
            " LIMIT %(limit)s",
            {"org": organization_id, "limit": limit},
        ).fetchall()


def revoke_token(conn: psycopg.Connection, ref: str) -> dict | None:
    """Revoke a token by id or prefix; None if no live token matches."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "UPDATE api_tokens SET revoked_at = now()"
            " WHERE (id::text = %(ref)s OR prefix = %(ref)s) AND revoked_at IS NULL"
            " RETURNING id, organization_id, prefix, name",
            {"ref": ref},
        ).fetchone()


def get_token(conn: psycopg.Connection, token_id: int, organization_id: int | None) -> dict | None:
    """A token by id, if it belongs to the organization (None: any token, platform ones too)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {COLUMNS} FROM api_tokens t LEFT JOIN organizations o"
            " ON o.id = t.organization_id"
            " WHERE t.id = %(id)s AND (%(org)s::bigint IS NULL OR t.organization_id = %(org)s)",
            {"id": token_id, "org": organization_id},
        ).fetchone()


def revoke_token_by_id(
    conn: psycopg.Connection, token_id: int, organization_id: int | None
) -> dict | None:
    """Revoke a live token of the organization (None: any); None if no such live token."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "UPDATE api_tokens SET revoked_at = now()"
            " WHERE id = %(id)s AND revoked_at IS NULL"
            " AND (%(org)s::bigint IS NULL OR organization_id = %(org)s)"
            " RETURNING id, organization_id, prefix, name",
            {"id": token_id, "org": organization_id},
        ).fetchone()
