"""Phone numbers as HTTP-API.md defines them: cleaned, then E.164-like or a short code."""

from __future__ import annotations

import re

import orjson

from smsnodes_hub.errors import InvalidRequest

_SEPARATORS = str.maketrans("", "", " -.()\t")
# fullmatch, not match with `$`: `$` also matches before a final "\n".
_VALID = re.compile(r"\+[0-9]{6,15}|[0-9]{3,8}")
MAX_RECIPIENTS = 100
_SHOWN_MAX = 40


class InvalidNumber(InvalidRequest, ValueError):
    """A recipient (or list of them) that is refused; the message names the entry."""


def _shown(value: object) -> str:
    """The offending entry for an error message, as JSON and cut short: the caller controls
    its size."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= _SHOWN_MAX else text[:_SHOWN_MAX] + "..."


def normalize(raw: object, field: str = "phoneNumbers") -> str:
    """Remove spaces, dashes, dots and parentheses; then `+` and 6-15 digits, or 3-8 digits."""
    if not isinstance(raw, str):
        raise InvalidNumber(f"{field}: must be a string, got {_shown(raw)}")
    cleaned = raw.translate(_SEPARATORS)
    if not _VALID.fullmatch(cleaned):
        raise InvalidNumber(
            f"{field}: invalid phone number {_shown(raw)}: use + and 6 to 15 digits, "
            "or a short code of 3 to 8 digits"
        )
    return cleaned


def normalize_list(raw: object) -> list[str]:
    """Validate and de-duplicate (after cleaning), keeping the caller's order."""
    if not isinstance(raw, list) or not raw:
        raise InvalidNumber("phoneNumbers: must be a non-empty array of strings")
    if len(raw) > MAX_RECIPIENTS:
        raise InvalidNumber(f"phoneNumbers: at most {MAX_RECIPIENTS} recipients per message")
    # The error names the entry by position too: the same text may appear more than once.
    cleaned = (normalize(item, f"phoneNumbers[{i}]") for i, item in enumerate(raw))
    return list(dict.fromkeys(cleaned))
