"""The throughput chart as plain numbers for an inline SVG: no chart library, no script."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

# Drawing units: the SVG stretches to the page's width (preserveAspectRatio="none") at a
# fixed height, so it holds only bars and lines; its labels are HTML and stay readable at
# any width.
WIDTH = 600
HEIGHT = 120
LEFT = 0
BOTTOM = 1  # the baseline
TOP = 4


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    width: float
    sent_y: float
    sent_height: float
    failed_y: float
    failed_height: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    bars: list[Bar]
    top: int  # the value at the top of the y axis
    total_sent: int
    total_failed: int
    busiest: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    plot_top: int = TOP
    plot_bottom: int = HEIGHT - BOTTOM


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least `value` (at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def throughput_chart(rows: Sequence[tuple[datetime, int, int]]) -> Chart:
    """`rows`: (minute, sent, failed), oldest first, one per minute."""
    peak = max((sent + failed for _, sent, failed in rows), default=0)
    top = nice_ceiling(peak)
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / max(len(rows), 1)
    bars = []
    for i, (minute, sent, failed) in enumerate(rows):
        sent_h = plot_height * sent / top
        failed_h = plot_height * failed / top
        base = HEIGHT - BOTTOM
        bars.append(Bar(
            x=round(LEFT + i * slot + 0.5, 2),
            width=round(max(slot - 1, 1), 2),
            sent_y=round(base - sent_h, 2),
            sent_height=round(sent_h, 2),
            failed_y=round(base - sent_h - failed_h, 2),
            failed_height=round(failed_h, 2),
            label=f"{minute:%H:%M} UTC: {sent} sent, {failed} failed",
        ))
    return Chart(
        bars=bars,
        top=top,
        total_sent=sum(r[1] for r in rows),
        total_failed=sum(r[2] for r in rows),
        busiest=peak,
    )
