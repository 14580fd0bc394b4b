"""Organizations (platform admins): each one's load on the queues, the noisiest first."""

from flask import render_template

from tasks import queues
from webapp import db
from webapp.admin import bp, platform_page
from webapp.store import organizations as organization_store


@bp.get("/organizations")
@platform_page
def organization_list():
    """Every organization's waiting, running, failed and finished jobs."""
    rows = organization_store.list_organization_load(db.get_conn(), queues.HOUSEKEEPING)
    return render_template("admin/organizations/list.html", rows=rows)
