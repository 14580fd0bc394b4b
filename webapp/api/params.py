"""Query-string parameters shared by the API's list endpoints."""

import re

from flask import request

from webapp.errors import api_error

DIGITS = re.compile(r"[0-9]{1,19}")
BIGINT_MAX = 2**63 - 1


def int_arg(name: str, default, minimum: int, maximum: int | None):
    """``?name=`` as a whole number within bounds; 422 otherwise."""
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    value = parse_id(raw)
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bounds = f"{minimum}-{maximum}" if maximum else f">= {minimum}"
        api_error(422, f"{name} must be a whole number ({bounds})")
    return value


def parse_id(raw: str) -> int | None:
    """ASCII digits that fit PostgreSQL's bigint, as an int; None otherwise."""
    if not DIGITS.fullmatch(raw) or int(raw) > BIGINT_MAX:
        return None
    return int(raw)
