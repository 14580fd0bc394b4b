"""Organizations, users, memberships and login sessions."""

import datetime

import psycopg
from psycopg.rows import dict_row


def insert_organization(conn: psycopg.Connection, name: str) -> dict:
    """Create an organization; raises UniqueViolation if the name (any case) is taken."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "INSERT INTO organizations (name) VALUES (%s) RETURNING id, name, created_at",
            (name,),
        ).fetchone()


def get_organization(conn: psycopg.Connection, ref: str | int) -> dict | None:
    """An organization by id or by name (any case)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, name, created_at FROM organizations"
            " WHERE id::text = %(ref)s OR lower(name) = lower(%(ref)s)"
            " ORDER BY (id::text = %(ref)s) DESC LIMIT 1",
            {"ref": str(ref)},
        ).fetchone()


def update_sms_rate(conn: psycopg.Connection, organization_id: int, per_second: int) -> dict:
    """Set how many SMS a second the organization may send; its row with the old rate."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "UPDATE organizations o SET sms_per_second = %s FROM organizations old"
            " WHERE o.id = %s AND old.id = o.id"
            " RETURNING o.id, o.name, o.sms_per_second, old.sms_per_second AS previous",
            (per_second, organization_id),
        ).fetchone()


def existing_organizations(conn: psycopg.Connection, ids: list[int]) -> set[int]:
    """Which of these organization ids exist."""
    rows = conn.execute("SELECT id FROM organizations WHERE id = ANY(%s)", (ids,)).fetchall()
    return {row[0] for row in rows}


def count_users(conn: psycopg.Connection) -> int:
    """How many users exist."""
    return conn.execute("SELECT count(*) FROM users").fetchone()[0]


def insert_user(conn: psycopg.Connection, email: str, password_hash: str) -> dict:
    """Create a user; raises UniqueViolation if the email is taken."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "INSERT INTO users (email, password_hash) VALUES (%s, %s) RETURNING id, email",
            (email, password_hash),
        ).fetchone()


def get_user_by_email(conn: psycopg.Connection, email: str) -> dict | None:
    """A user and their password hash, by email."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, email, password_hash FROM users WHERE email = %s", (email,)
        ).fetchone()


def update_password(conn: psycopg.Connection, user_id: int, password_hash: str) -> None:
    """Replace a user's password hash."""
    conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (password_hash, user_id))


def upsert_membership(
    conn: psycopg.Connection, user_id: int, organization_id: int, role: str
) -> None:
    """Give a user a role in an organization (replacing any earlier role there)."""
    conn.execute(
        "INSERT INTO memberships (user_id, organization_id, role) VALUES (%s, %s, %s)"
        " ON CONFLICT (user_id, organization_id) DO UPDATE SET role = EXCLUDED.role",
        (user_id, organization_id, role),
    )


def insert_session(
    conn: psycopg.Connection, id_hash: str, user_id: int, expires_at: datetime.datetime
) -> None:
    """Record a new login session."""
    conn.execute(
        "INSERT INTO user_sessions (id_hash, user_id, expires_at) VALUES (%s, %s, %s)",
        (id_hash, user_id, expires_at),
    )


def get_session_user(conn: psycopg.Connection, id_hash: str) -> dict | None:
    """The live session's user with the role they act in: the membership the session
    chose, else admin first, then the lowest organization."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT u.id, u.email, m.organization_id, m.role
            FROM user_sessions s
            JOIN users u ON u.id = s.user_id
            JOIN LATERAL (
                SELECT organization_id, role FROM memberships WHERE user_id = u.id
                ORDER BY (organization_id = s.organization_id) IS TRUE DESC,
                         (role = 'admin') DESC, organization_id
                LIMIT 1
            ) m ON true
            WHERE s.id_hash = %s AND s.revoked_at IS NULL AND s.expires_at > now()
            """,
            (id_hash,),
        ).fetchone()


def list_memberships(conn: psycopg.Connection, user_id: int) -> list[dict]:
    """A user's organizations and roles, by organization name."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT m.organization_id, o.name AS organization_name, m.role"
            " FROM memberships m JOIN organizations o ON o.id = m.organization_id"
            " WHERE m.user_id = %s ORDER BY o.name, o.id",
            (user_id,),
        ).fetchall()


def set_session_organization(conn: psycopg.Connection, id_hash: str, organization_id: int) -> bool:
    """Make a live session act for one of its user's organizations; False if the user
    has no membership there."""
    cursor = conn.execute(
        """
        UPDATE user_sessions s SET organization_id = %(org)s
        WHERE s.id_hash = %(id)s AND s.revoked_at IS NULL
          AND EXISTS (SELECT 1 FROM memberships m
                      WHERE m.user_id = s.user_id AND m.organization_id = %(org)s)
        """,
        {"id": id_hash, "org": organization_id},
    )
    return cursor.rowcount == 1


def list_organizations(conn: psycopg.Connection) -> list[dict]:
    """Every organization, by name (what an admin filters by)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT id, name FROM organizations ORDER BY name, id").fetchall()


def revoke_session(conn: psycopg.Connection, id_hash: str) -> None:
    """End one session."""
    conn.execute(
        "UPDATE user_sessions SET revoked_at = now() WHERE id_hash = %s AND revoked_at IS NULL",
        (id_hash,),
    )


def revoke_user_sessions(conn: psycopg.Connection, user_id: int) -> int:
    """End every session of a user (after a password change); return how many."""
    cursor = conn.execute(
        "UPDATE user_sessions SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
        (user_id,),
    )
    return cursor.rowcount
