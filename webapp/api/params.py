"""Path and query-string parameters shared by the API's endpoints, with their bounds."""

import re

from flask import request
from werkzeug.routing import BaseConverter, ValidationError

from webapp.errors import api_error

DIGITS = re.compile(r"[0-9]{1,19}")
BIGINT_MAX = 2**63 - 1
# The OpenAPI document states these bounds; the server enforces the same ones.
ID_BOUNDS = {"minimum": 1, "maximum": BIGINT_MAX}


class IdConverter(BaseConverter):
    """``<id:name>``: ASCII digits naming a bigint id from 1 up; any other segment does
    not match the route (404). werkzeug's ``int`` takes any length, and any Unicode
    digit (``/jobs/٣`` would be job 3)."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = parse_id(value)
        if number is None or number < 1:
            raise ValidationError()
        return number

    def to_url(self, value: int) -> str:
        return str(value)


def int_arg(name: str, default, minimum: int, maximum: int):
    """``?name=`` as a whole number within bounds; 422 otherwise."""
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    value = parse_id(raw)
    if value is None or not minimum <= value <= maximum:
        api_error(422, f"{name} must be a whole number ({minimum}-{maximum})")
    return value


def str_arg(name: str, max_length: int, choices: tuple[str, ...] | None = None) -> str | None:
    """``?name=`` as text of at most ``max_length`` characters without NUL (PostgreSQL
    stores none), or one of ``choices``; ``None`` when absent or empty; 422 otherwise."""
    raw = request.args.get(name) or None
    if raw is None:
        return None
    if choices is not None and raw not in choices:
        api_error(422, f"{name} must be one of {', '.join(choices)}")
    if len(raw) > max_length or "\x00" in raw:
        api_error(422, f"{name} must be at most {max_length} characters, without NUL")
    return raw


def parse_id(raw: str) -> int | None:
    """ASCII digits that fit PostgreSQL's bigint, as an int; None otherwise."""
    if not DIGITS.fullmatch(raw) or int(raw) > BIGINT_MAX:
        return None
    return int(raw)
