"""Failures: failed runs grouped by task and error, with how often they happen lately."""

from flask import render_template
from flask_login import current_user

from tasks import queues
from webapp import db
from webapp.admin import bp, layout, scope
from webapp.store import failures as failure_store

SHOWN_GROUPS = 100  # the groups last seen; older ones are kept but not listed


def jobs_url(group: dict) -> str:
    """The job list filtered to a group's failed jobs."""
    values = {"state": "failed", "task": group["task_name"], "error": group["error_key"]}
    if group["housekeeping"]:
        values["queue"] = queues.HOUSEKEEPING
    elif current_user.is_admin and group["organization_id"] is not None:
        values["org"] = group["organization_id"]
    return layout.admin_url("admin.job_list", **values)


def groups(organization_id: int | None, housekeeping: bool) -> list[dict]:
    """Failure groups in scope, each with the link to its jobs."""
    rows = failure_store.list_failure_groups(
        db.get_conn(), organization_id, housekeeping=housekeeping, limit=SHOWN_GROUPS
    )
    return [{**row, "jobs_url": jobs_url(row)} for row in rows]


@bp.get("/failures")
def failure_list():
    """Failed runs grouped by task, error class and normalised message."""
    organization_id = scope.organization()
    show_housekeeping = current_user.is_admin and organization_id is None
    return render_template(
        "admin/failures/list.html",
        groups=groups(organization_id, housekeeping=False),
        housekeeping_groups=groups(None, housekeeping=True) if show_housekeeping else None,
        shown_limit=SHOWN_GROUPS,
        show_organization=organization_id is None,
    )
