"""Which organization an API request acts for; nothing else decides tenancy.

A token or a person acts for their own organization. A platform admin acts for
every organization, or for the one named by ``?organization_id=``.
"""

from flask import abort, request
from flask_login import current_user

from webapp.api import params


def named_organization() -> int | None:
    """The ``?organization_id=`` of the request, if any."""
    if "organization_id" not in request.args:  # werkzeug's .get() raises and catches a 400
        return None
    named = request.args["organization_id"]
    value = params.parse_id(named)
    if value is None or value < 1:
        abort(400, "organization_id must be a positive whole number")
    return value


def acting_organization() -> int | None:
    """The organization this request acts for; ``None`` means every organization."""
    named = named_organization()
    if current_user.is_admin:
        return named
    if named is not None and named != current_user.organization_id:
        abort(403, "this caller acts for its own organization only")
    return current_user.organization_id


def is_platform() -> bool:
    """Whether the caller is a platform admin (a person or a platform token)."""
    return current_user.is_admin
