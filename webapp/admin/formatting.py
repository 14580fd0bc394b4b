"""Jinja filters of the admin pages: times, ages, durations and counts, for people."""

import datetime
import json
import math

from webapp.admin import bp

NONE = "\N{EN DASH}"  # what a page shows for a value it does not have


@bp.app_template_filter("when")
def when(value: datetime.datetime | None) -> str:
    """A moment in UTC, to the second: ``2026-11-29 21:35:12``; a dash for none."""
    if value is None:
        return NONE
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


@bp.app_template_filter("span")
def span(seconds: float | datetime.timedelta | None) -> str:
    """A length of time, in its two largest units: ``850 ms``, ``42 s``, ``3 min 5 s``."""
    if seconds is None:
        return NONE
    if isinstance(seconds, datetime.timedelta):
        seconds = seconds.total_seconds()
    if seconds < 1:
        return f"{max(seconds, 0) * 1000:.0f} ms"
    whole = int(seconds)
    for unit, size, smaller, small_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "min", 60),
        ("min", 60, "s", 1),
    ):
        if whole >= size:
            rest = (whole % size) // small_size
            return f"{whole // size} {unit}" + (f" {rest} {smaller}" if rest else "")
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


@bp.app_template_filter("ago")
def ago(value: datetime.datetime | None) -> str:
    """How long ago a moment was: ``3 min ago``; ``in 2 h`` for one still to come."""
    if value is None:
        return NONE
    delta = (datetime.datetime.now(datetime.UTC) - value).total_seconds()
    return f"{span(delta)} ago" if delta >= 0 else f"in {span(-delta)}"


@bp.app_template_filter("count")
def count(value: int | None) -> str:
    """A count with thousands separated: ``1,204,331``."""
    return NONE if value is None else f"{value:,}"


@bp.app_template_filter("percent")
def percent(fraction: float | None) -> str:
    """A fraction from 0 to 1 as a whole percentage, rounded down (``99%`` until done)."""
    if fraction is None:
        return NONE
    return f"{math.floor(fraction * 100 + 1e-6)}%"  # 0.29 * 100 is 28.999999999999996


COMPACT_JSON_LIMIT = 300  # characters; a page row shows a glimpse, not a whole document


@bp.app_template_filter("compact_json")
def compact_json(value: object, limit: int = COMPACT_JSON_LIMIT) -> str:
    """A JSON value on one line without spaces, keys sorted, cut to ``limit`` characters."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"
