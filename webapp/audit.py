"""Record state-changing actions in the audit log, with who did them and from where."""

import logging

import psycopg
from flask import request
from flask_login import current_user

from webapp import db
from webapp.store import audit as store

log = logging.getLogger(__name__)


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
    store.insert_entry(
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
    store.insert_entry(
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
