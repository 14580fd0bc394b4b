"""The admin pages' filters for times, durations and counts."""

import datetime

import pytest

from webapp.admin import formatting


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, formatting.NONE),
        (0.0004, "0 ms"),
        (0.85, "850 ms"),
        (4.25, "4.2 s"),
        (42, "42 s"),
        (60, "1 min"),
        (185, "3 min 5 s"),
        (3600 * 5 + 60 * 7 + 9, "5 h 7 min"),
        (86400 * 3 + 3600, "3 d 1 h"),
        (datetime.timedelta(minutes=2), "2 min"),
    ],
)
def test_span(seconds, shown):
    assert formatting.span(seconds) == shown


def test_ago_and_when():
    now = datetime.datetime.now(datetime.UTC)
    assert formatting.ago(now - datetime.timedelta(seconds=190)) == "3 min 10 s ago"
    assert formatting.ago(now + datetime.timedelta(hours=2, seconds=30)).startswith("in 2 h")
    moment = datetime.datetime(
        2026, 11, 29, 22, 5, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )
    assert formatting.when(moment) == "2026-11-29 20:05:01"
    assert formatting.count(1204331) == "1,204,331"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ({}, "{}"),
        ({"b": 2, "a": [1, None]}, '{"a":[1,null],"b":2}'),
        ({"text": "x" * 400}, '{"text":"' + "x" * 290 + "\N{HORIZONTAL ELLIPSIS}"),
    ],
)
def test_compact_json(value, shown):
    assert formatting.compact_json(value) == shown
