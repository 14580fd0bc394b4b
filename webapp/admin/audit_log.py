"""The audit log page: who did what to which job, queue or token, and when.

Operators and viewers read their organization's entries; platform admins read every
entry, or one organization's. Failed sign-ins name addresses and the emails tried, so
only platform admins see them.
"""

from flask import abort, render_template, request
from flask_login import current_user

from webapp import db
from webapp.admin import bp, scope
from webapp.api import params
from webapp.store import audit as store

PAGE_SIZE = 50
MAX_FILTER = 200
SENSITIVE_ACTION = "login.failed"


def text_arg(name: str) -> str | None:
    """``?name=`` as trimmed text (None when empty); a 400 when too long or with a NUL."""
    value = request.args.get(name, "").strip()
    if len(value) > MAX_FILTER or "\x00" in value:
        abort(400, f"The {name} filter must be at most {MAX_FILTER} characters.")
    return value or None


def cursor_arg() -> int | None:
    """``?before=``: the id the page starts below (keyset pagination)."""
    raw = request.args.get("before", "")
    before = params.parse_id(raw) if raw else None
    if raw and before is None:
        abort(400, "The before cursor must be an entry's id.")
    return before


def actor_filter(value: str | None) -> dict:
    """``bob@example.com`` matches that actor; ``bob*`` every actor whose label starts so."""
    if value is not None and value.endswith("*"):
        return {"actor": value.rstrip("*") or None, "actor_prefix": True}
    return {"actor": value, "actor_prefix": False}


def shown(entry: dict) -> dict:
    """An entry as the page shows it, with the job it targets, if any, to link to."""
    target = entry["target_id"]
    job_id = params.parse_id(target) if entry["target_type"] == "job" else None
    return {**entry, "job_id": job_id}


def action_choices(conn, hidden: str | None, chosen: str | None) -> list[str]:
    """The actions on record in the page's scope (the chosen one too, so the filter shows
    what it filters by)."""
    present = store.list_actions(conn, scope.organization(), hidden)
    return present if chosen is None or chosen in present else sorted([*present, chosen])


@bp.get("/audit")
def audit_list():
    """Audit entries newest first, filtered by actor and action, 50 to a page."""
    actor, action = text_arg("actor"), text_arg("action")
    hidden = None if current_user.is_admin else SENSITIVE_ACTION
    conn = db.get_conn()
    rows = store.list_entries(
        conn,
        organization_id=scope.organization(),
        action=action,
        hidden_action=hidden,
        before_id=cursor_arg(),
        limit=PAGE_SIZE + 1,
        **actor_filter(actor),
    )
    filters = [(name, value) for name, value in (("actor", actor), ("action", action)) if value]
    return render_template(
        "admin/audit/list.html",
        entries=[shown(row) for row in rows[:PAGE_SIZE]],
        next_before=rows[PAGE_SIZE - 1]["id"] if len(rows) > PAGE_SIZE else None,
        actions=action_choices(conn, hidden, action),
        actor=actor or "",
        action=action or "",
        filter_args=filters,
        page_args=dict(filters),
    )
