"""Query-string parameters shared by the API's list endpoints."""

from flask import request

from webapp.errors import api_error


def int_arg(name: str, default, minimum: int, maximum: int | None):
    """``?name=`` as a whole number within bounds; 422 otherwise."""
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    if not raw.isdigit() or int(raw) < minimum or (maximum is not None and int(raw) > maximum):
        bounds = f"{minimum}-{maximum}" if maximum else f">= {minimum}"
        api_error(422, f"{name} must be a whole number ({bounds})")
    return int(raw)
