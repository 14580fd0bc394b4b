"""What every admin page's layout shows: the navigation, the organization filter and,
for people in several organizations, the menu to switch between them."""

from dataclasses import dataclass

from flask import current_app, g, request, url_for
from flask_login import current_user

from webapp import db
from webapp.admin import PLATFORM_PAGES, WRITER_PAGES, bp, scope
from webapp.forms import SwitchOrganizationForm
from webapp.store import accounts as account_store


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: str


# In page order. A page appears once its view exists; platform pages for admins only,
# and pages for writers to operators and admins.
NAV = (
    NavItem("admin.overview", "Queues"),
    NavItem("admin.job_list", "Jobs"),
    NavItem("admin.failure_list", "Failures"),
    NavItem("admin.worker_list", "Workers"),
    NavItem("admin.periodic_list", "Periodic"),
    NavItem("admin.organization_list", "Organizations"),
    NavItem("admin.audit_list", "Audit log"),
    NavItem("admin.database", "Database"),
    NavItem("admin.token_list", "API tokens"),
    NavItem("admin.sms_new", "Send SMS"),
    NavItem("admin.subscription_list", "Digests"),
)


# Pages about the whole platform, which one organization's filter would not change.
UNFILTERED = {"admin.database", "admin.organization_list"}


def admin_url(endpoint: str, **values) -> str:
    """``url_for`` that keeps the page's organization filter."""
    return url_for(endpoint, **{**scope.carried(), **values})


def nav_items() -> list[dict]:
    """The navigation links this reader may follow, with the current page marked."""
    views = current_app.view_functions
    return [
        {
            "label": item.label,
            "url": admin_url(item.endpoint),
            "current": request.endpoint == item.endpoint,
        }
        for item in NAV
        if item.endpoint in views and may_open(item.endpoint)
    ]


def may_open(endpoint: str) -> bool:
    """Whether the gate lets this reader open the page."""
    if endpoint in PLATFORM_PAGES and not current_user.is_admin:
        return False
    return current_user.can_write or endpoint not in WRITER_PAGES


@bp.context_processor
def layout_values() -> dict:
    """Values of the admin layout, once the gate let the request in; none for an error
    page (which does not use them, and may be about the database being gone)."""
    if not scope.settled() or g.get("rendering_error"):
        return {}
    conn = db.get_conn()
    memberships = account_store.list_memberships(conn, current_user.id)
    return {
        "admin_nav": nav_items(),
        "admin_url": admin_url,
        "can_write": current_user.can_write,
        "is_admin": current_user.is_admin,
        "shown_organization": scope.organization(),
        "organizations": account_store.list_organizations(conn)
        if current_user.is_admin and request.endpoint not in UNFILTERED
        else [],
        "memberships": memberships if len(memberships) > 1 else [],
        "switch_form": SwitchOrganizationForm(formdata=None),
    }
