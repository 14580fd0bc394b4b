"""The admin pages under /admin/queues: Howdah's counterpart of Bull Board.

Only people signed in see them (API tokens call /api). Each page shows the
organizations its reader may see (``scope``); viewers read, and every change is a POST
with its CSRF token, refused to viewers here, once for the whole blueprint.
"""

from flask import Blueprint, abort, request
from flask_login import current_user

from webapp import auth
from webapp.admin import scope

bp = Blueprint("admin", __name__, url_prefix="/admin/queues")

# Pages for platform admins only; the others are scoped to the reader's organization.
PLATFORM_PAGES: set[str] = set()
# Pages viewers may not even open: forms that start jobs or change settings.
WRITER_PAGES: set[str] = set()
# Changes a viewer may make: choosing which of their organizations to act for.
VIEWER_CHANGES = {"admin.switch_organization"}


def platform_page(view):
    """Mark a view as one for platform admins only (checked in ``gate``)."""
    PLATFORM_PAGES.add(f"{bp.name}.{view.__name__}")
    return view


def writer_page(view):
    """Mark a view as one for operators and admins only (checked in ``gate``)."""
    WRITER_PAGES.add(f"{bp.name}.{view.__name__}")
    return view


@bp.before_request
def gate():
    """Who may open admin pages, and who may change anything through them."""
    if auth.bearer_secret(request) is not None:
        abort(403, "The admin pages are for people signed in; API tokens call /api.")
    if not current_user.is_authenticated:
        return auth.login_manager.unauthorized()
    if current_user.kind != "user":
        abort(403, "The admin pages are for people signed in; API tokens call /api.")
    if request.endpoint in PLATFORM_PAGES and not current_user.is_admin:
        abort(403, "This page is for platform admins.")
    if request.endpoint in WRITER_PAGES and not current_user.can_write:
        abort(403, "This page is for operators and admins; viewers cannot use it.")
    changes = request.method not in auth.SAFE_METHODS and request.endpoint not in VIEWER_CHANGES
    if changes and not current_user.can_write:
        abort(403, "Viewers can look at queues and jobs but not change them.")
    scope.settle()
    return None


# Route modules register their views on bp when imported.
from webapp.admin import (  # noqa: E402,F401
    audit_log,
    bulk,
    database,
    failures,
    formatting,
    job_actions,
    job_detail,
    jobs_list,
    layout,
    organizations,
    overview,
    periodic,
    queue_actions,
    session,
    sms,
    subscriptions,
    tokens,
    workers,
)
