"""Segment counting (GSM 03.38 basic and extension tables; 160/153 and 70/67)."""

from __future__ import annotations

import pytest

from smsnodes_hub.segments import GSM7, UCS2, analyze


@pytest.mark.parametrize(
    ("text", "encoding", "segments", "units"),
    [
        ("Hello from SMS Nodes!", GSM7, 1, 21),
        ("a" * 160, GSM7, 1, 160),
        ("a" * 161, GSM7, 2, 161),
        ("a" * 306, GSM7, 2, 306),
        ("a" * 307, GSM7, 3, 307),
        ("€" * 80, GSM7, 1, 160),  # extension characters cost two septets
        ("€" * 81, GSM7, 2, 162),
        ("a" * 152 + "€" + "b" * 10, GSM7, 2, 164),  # the escape pair moves to part two
        ("a" * 152 + "€" * 77, GSM7, 3, 306),
        ("Grüße aus Köln", GSM7, 1, 14),  # ß, ü and ö are in the basic table
        ("ça va", UCS2, 1, 5),  # lower-case ç is not (upper-case Ç is)
        ("Привет", UCS2, 1, 6),
        ("x" * 70 + "й", UCS2, 2, 71),
        ("😀" * 35, UCS2, 1, 70),  # each emoji is a surrogate pair: two units
        ("😀" * 36, UCS2, 2, 72),
        ("a" * 66 + "😀", UCS2, 1, 68),
        ("a" * 66 + "😀" + "b" * 3, UCS2, 2, 71),
        ("", GSM7, 0, 0),
    ],
)
def test_segments(text: str, encoding: str, segments: int, units: int) -> None:
    result = analyze(text)
    assert (result.encoding, result.segments, result.units) == (encoding, segments, units)
