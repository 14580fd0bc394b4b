"""Which organization an admin page shows; nothing else decides tenancy on these pages.

A person sees their own organization. A platform admin sees every organization, or
the one chosen with ``?org=`` (the filter on every page).
"""

from flask import abort, g, request
from flask_login import current_user

from webapp.api import params

ORG_PARAM = "org"


def chosen_organization() -> int | None:
    """The ``?org=`` of the request, if any (an admin's filter)."""
    named = request.args.get(ORG_PARAM, "").strip()
    if not named:
        return None
    value = params.parse_id(named)
    if value is None or value < 1:
        abort(400, "The organization filter must be an organization's id.")
    return value


def settle() -> None:
    """Decide the request's organization once, before its view (a bad filter is a 400)."""
    g.admin_organization = (
        chosen_organization() if current_user.is_admin else current_user.organization_id
    )


def settled() -> bool:
    """Whether this request got past the admin gate (error pages may render without)."""
    return "admin_organization" in g


def organization() -> int | None:
    """The organization this page shows; ``None`` means every organization."""
    return g.admin_organization


def carried() -> dict:
    """The query values a link to another admin page keeps: the organization filter."""
    chosen = g.admin_organization if current_user.is_admin else None
    return {} if chosen is None else {ORG_PARAM: chosen}
