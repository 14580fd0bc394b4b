"""Loaders that let every Howdah connection read any row PostgreSQL can hold.

PostgreSQL stores timestamps from 4713 BC to 294276 AD and ``infinity``; Python's
``datetime`` spans years 1 to 9999, and psycopg raises ``DataError`` for the rest,
which would fail every query that reads such a row (a job written around the API,
say). Here those values load as the nearest ``datetime`` (``min`` or ``max``, in
UTC); a number Python cannot hold as it is loads as its digits, and JSON nested too
deeply for Python's parser loads as a marker object.
"""

import datetime
import json
import math
from typing import Any

import psycopg
from psycopg.adapt import Loader
from psycopg.pq import Format
from psycopg.types.json import set_json_loads

EARLIEST = datetime.datetime.min.replace(tzinfo=datetime.UTC)
LATEST = datetime.datetime.max.replace(tzinfo=datetime.UTC)
UNREADABLE_JSON = "unreadable"


class ClampedLoader(Loader):
    """Wraps psycopg's own timestamptz loader; see the module docstring."""

    inner: type[Loader]
    early: bytes  # the text suffix of a BC value; empty for the binary format

    def __init__(self, oid: int, context: Any = None):
        super().__init__(oid, context)
        self._inner = self.inner(oid, context)

    def load(self, data):
        try:
            return self._inner.load(data)
        except psycopg.DataError:
            return EARLIEST if _is_early(bytes(data), self.early) else LATEST


def _clamped(inner: type[Loader], early: bytes) -> type[Loader]:
    return type(
        f"Clamped{inner.__name__}",
        (ClampedLoader,),
        {"inner": inner, "early": early, "format": inner.format},
    )


def _is_early(data: bytes, marker: bytes) -> bool:
    if marker:  # text: "... BC" or "-infinity"
        return data.endswith(marker) or data.startswith(b"-")
    return int.from_bytes(data[:8], "big", signed=True) < 0  # binary: microseconds since 2000


def safe_json_loads(data: str | bytes) -> Any:
    """``json.loads``, but a number Python cannot hold as it is (an integer too long for
    ``int``, a float beyond ``float``) stays text, and JSON nested deeper than Python
    parses becomes a marker object."""
    try:
        return json.loads(data, parse_int=_int_or_text, parse_float=_float_or_text)
    except (RecursionError, ValueError):
        return {UNREADABLE_JSON: "nested too deeply, or otherwise beyond Python's parser"}


def _int_or_text(digits: str) -> int | str:
    try:
        return int(digits)
    except ValueError:  # over sys.get_int_max_str_digits() digits
        return digits


def _float_or_text(digits: str) -> float | str:
    value = float(digits)
    return value if math.isfinite(value) else digits  # JSON has no Infinity


def register(conn: psycopg.Connection | psycopg.AsyncConnection) -> None:
    """Install the clamping timestamp loaders and the safe JSON loader on ``conn``."""
    oid = psycopg.postgres.types["timestamptz"].oid
    for fmt, early in ((Format.TEXT, b" BC"), (Format.BINARY, b"")):
        inner = conn.adapters.get_loader(oid, fmt)
        if inner is not None and not issubclass(inner, ClampedLoader):
            conn.adapters.register_loader(oid, _clamped(inner, early))
    set_json_loads(safe_json_loads, conn)
