"""Switching the organization a session acts for (people with several memberships)."""

from flask import abort, flash, redirect, url_for
from flask_login import current_user

from webapp import accounts, audit, db
from webapp.admin import bp
from webapp.forms import SwitchOrganizationForm
from webapp.store import accounts as account_store


def membership_label(organization_id: int) -> str:
    """ "Globex, as operator": which organization and role a switch chose."""
    for row in account_store.list_memberships(db.get_conn(), current_user.id):
        if row["organization_id"] == organization_id:
            return f"{row['organization_name']}, as {row['role']}"
    return f"organization {organization_id}"


@bp.post("/organization")
def switch_organization():
    """Act for another of the reader's organizations from now on, in this session."""
    form = SwitchOrganizationForm()
    if not form.validate_on_submit():
        abort(400, "Choose one of your organizations.")
    chosen = form.organization_id.data
    conn = db.get_conn()
    with conn.transaction():  # the switch lands with its audit entry, or not at all
        if not accounts.switch_organization(conn, current_user.session_id, chosen):
            abort(403, "You are not a member of that organization.")
        audit.record(
            "session.organization_switched",
            target_type="organization",
            target_id=chosen,
            organization_id=chosen,
            details={"from": current_user.organization_id},
        )
    flash(f"You now act for {membership_label(chosen)}.", "success")
    return redirect(url_for("admin.overview"))
