"""Which organization an API request acts for.

Every API route asks ``acting_organization``; nothing else decides tenancy.
Until accounts and tokens exist, a request acts for the organization it names
(``?organization_id=`` on reads), or for any organization (``None``), in which
case a job belongs to the organization its payload names.
"""

from flask import abort, request


def acting_organization() -> int | None:
    """The organization this request acts for; ``None`` means every organization."""
    named = request.args.get("organization_id")
    if named is None:
        return None
    if not named.isdigit() or int(named) < 1:
        abort(400, "organization_id must be a positive whole number")
    return int(named)
