"""Phone numbers as HTTP-API.md defines them: cleaned, then E.164-like or a short code."""

from __future__ import annotations

import re

_SEPARATORS = str.maketrans("", "", " -.()\t")
_VALID = re.compile(r"^(?:\+[0-9]{6,15}|[0-9]{3,8})$")
MAX_RECIPIENTS = 100


class InvalidNumber(ValueError):
    pass


def normalize(raw: object) -> str:
    """Remove spaces, dashes, dots and parentheses; then `+` and 6-15 digits, or 3-8 digits."""
    if not isinstance(raw, str):
        raise InvalidNumber(f"phoneNumbers: every entry must be a string (got {raw!r})")
    cleaned = raw.translate(_SEPARATORS)
    if not _VALID.match(cleaned):
        raise InvalidNumber(
            f"phoneNumbers: invalid phone number {raw!r}: use + and 6 to 15 digits, "
            "or a short code of 3 to 8 digits"
        )
    return cleaned


def normalize_list(raw: object) -> list[str]:
    """Validate and de-duplicate (after cleaning), keeping the caller's order."""
    if not isinstance(raw, list) or not raw:
        raise InvalidNumber("phoneNumbers: must be a non-empty array of strings")
    if len(raw) > MAX_RECIPIENTS:
        raise InvalidNumber(f"phoneNumbers: at most {MAX_RECIPIENTS} recipients per message")
    return list(dict.fromkeys(normalize(item) for item in raw))
