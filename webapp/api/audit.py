"""/api/admin/audit: the audit log, for platform admins."""

from webapp import db
from webapp.api import bp, params, tenancy
from webapp.api.schemas import MAX_TEXT
from webapp.store import audit as store


@bp.get("/admin/audit")
def list_audit_entries():
    """Audit entries newest first, by organization and action, with keyset pagination."""
    limit = params.int_arg("limit", 50, 1, 500)
    rows = store.list_entries(
        db.get_conn(),
        organization_id=tenancy.named_organization(),
        action=params.str_arg("action", MAX_TEXT),
        before_id=params.int_arg("cursor", None, 1, params.BIGINT_MAX),
        limit=limit + 1,
    )
    page = rows[:limit]
    return {
        "entries": [{**row, "at": row["at"].isoformat()} for row in page],
        "next_cursor": str(page[-1]["id"]) if len(rows) > limit else None,
    }
