"""Segment counts as carriers count them."""

import pytest

from tasks.sms_text import count_segments


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 1),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # the extension table counts twice
        ("€" * 81, "GSM-7", 162, 2),
        ("Ça coûte 5 €", "UCS-2", 12, 1),  # û is not in the GSM alphabet
        ("é" * 70, "GSM-7", 70, 1),  # é is
        ("ж" * 70, "UCS-2", 70, 1),
        ("ж" * 71, "UCS-2", 71, 2),
        ("😀" * 35, "UCS-2", 70, 1),  # two UTF-16 units each
        ("😀" * 36, "UCS-2", 72, 2),
        ("a" * 1600, "GSM-7", 1600, 11),
    ],
)
def test_count_segments(text, encoding, units, segments):
    count = count_segments(text)
    assert (count.encoding, count.units, count.segments) == (encoding, units, segments)
