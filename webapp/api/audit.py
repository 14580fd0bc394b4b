"""/api/admin/audit: the audit log, for platform admins."""

from webapp import db
from webapp.api import bp, params, tenancy
from webapp.api.documents import AuditEntry, AuditPage, page_cursor, respond
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
    entries = [AuditEntry.model_construct(**row) for row in rows[:limit]]
    return respond(AuditPage.model_construct(entries=entries, next_cursor=page_cursor(rows, limit)))
