"""Timestamps on the wire: ISO 8601 UTC ending in Z, as both contracts require."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def wire_time(moment: datetime | None) -> str | None:
    """Whole seconds, as in PROTOCOL.md's examples: a phone's parser with a fixed pattern
    (yyyy-MM-dd'T'HH:mm:ss'Z') must not meet fractions."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 timestamp; one without an offset is taken as UTC. ValueError for
    anything else, also for a time whose UTC falls off the calendar (year 1 at +01:00)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text[:40]!r} is out of range in UTC") from None
