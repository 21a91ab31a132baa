"""How many SMS a text takes: GSM 03.38 7-bit (basic table plus the extension table, whose
characters cost two septets) or UCS-2 (UTF-16 code units), single or concatenated."""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7 = "GSM-7"
UCS2 = "UCS-2"
_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}  # one SMS, each part of a concatenated one


@dataclass(frozen=True, slots=True)
class Segmentation:
    encoding: str
    segments: int
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2


def _units(text: str, encoding: str) -> list[int]:
    """The cost of each character in its encoding's units."""
    if encoding == GSM7:
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def analyze(text: str) -> Segmentation:
    encoding = GSM7 if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text) else UCS2
    costs = _units(text, encoding)
    total = sum(costs)
    single, part = _LIMITS[encoding]
    if total <= single:
        return Segmentation(encoding, 1 if total else 0, total)
    # A character's units never straddle two parts (an escape pair, a surrogate pair).
    segments, used = 1, 0
    for cost in costs:
        if used + cost > part:
            segments += 1
            used = 0
        used += cost
    return Segmentation(encoding, segments, total)
