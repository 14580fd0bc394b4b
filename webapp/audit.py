"""Record state-changing actions in the audit log, with who did them and from where.

Callers write the entry in the transaction that makes the change, so the two commit
together or not at all.
"""

import logging

import psycopg
from flask import request
from flask_login import current_user

from webapp import db
from webapp.store import audit as store

log = logging.getLogger(__name__)


class AuditFailed(Exception):
    """The audit entry could not be written, so the change it records must not stand."""

    def __init__(self, action: str):
        super().__init__(f"the audit entry for {action} could not be written")
        self.action = action


def _insert(conn: psycopg.Connection, entry: dict) -> None:
    """Insert an entry; a refusal (not an outage or a timeout) becomes AuditFailed."""
    try:
        store.insert_entry(conn, entry)
    except (psycopg.OperationalError, psycopg.errors.QueryCanceled):
        raise
    except psycopg.Error as exc:
        raise AuditFailed(entry["action"]) from exc


def record(
    action: str,
    *,
    target_type: str = "",
    target_id: object = "",
    organization_id: int | None = None,
    details: dict | None = None,
    actor=None,
) -> None:
    """Write one entry for the current request's caller (or ``actor``)."""
    actor = actor if actor is not None else current_user
    known = getattr(actor, "is_authenticated", False)
    _insert(
        db.get_conn(),
        {
            "actor_type": actor.kind if known else "anonymous",
            "actor_id": actor.id if known else None,
            "actor_label": actor.label if known else "",
            "organization_id": organization_id,
            "action": action,
            "target_type": target_type,
            "target_id": str(target_id),
            "ip": request.remote_addr,
            "details": details,
        },
    )


def record_cli(
    conn: psycopg.Connection,
    action: str,
    *,
    target_type: str = "",
    target_id: object = "",
    organization_id: int | None = None,
    details: dict | None = None,
) -> None:
    """Write one entry for a change made with the flask CLI."""
    _insert(
        conn,
        {
            "actor_type": "cli",
            "actor_id": None,
            "actor_label": "flask cli",
            "organization_id": organization_id,
            "action": action,
            "target_type": target_type,
            "target_id": str(target_id),
            "ip": None,
            "details": details,
        },
    )
