"""How many SMS segments a message takes, as carriers count them (3GPP TS 23.038).

A message written only in the GSM 7-bit alphabet fits 160 characters in one segment and
153 in each part of a longer one; the characters of the alphabet's extension table count
twice. Any other character sends the whole message as UCS-2: 70 UTF-16 code units in one
segment, 67 in each part of a longer one. ``static/app.js`` counts the same way.
"""

import math
from dataclasses import dataclass

GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = "^{}\\[~]|€\f"
GSM_CHARACTERS = frozenset(GSM_BASIC.replace("\x1b", "")) | frozenset(GSM_EXTENDED)


@dataclass(frozen=True)
class SegmentCount:
    """A message's encoding, its length in that encoding's units, and its segments."""

    encoding: str  # "GSM-7" or "UCS-2"
    units: int
    segments: int


def count_segments(text: str) -> SegmentCount:
    """The encoding and number of segments ``text`` is sent in."""
    if all(c in GSM_CHARACTERS for c in text):
        units = sum(2 if c in GSM_EXTENDED else 1 for c in text)
        single, part, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, part, encoding = 70, 67, "UCS-2"
    segments = 1 if units <= single else math.ceil(units / part)
    return SegmentCount(encoding, units, segments)
