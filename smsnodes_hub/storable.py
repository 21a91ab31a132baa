"""The one rule for text from outside: PostgreSQL `text` cannot hold a NUL character, and
no UTF-8 (so no database, no hash input, no log line) can hold an unpaired surrogate. Every
request body, frame and credential is checked here before any of it reaches a query; what
fails is refused at the edge (a 400, an `error` frame, or a failed login) instead of being
refused by the database as a 500 or a "database unavailable".

orjson and aiohttp already refuse invalid UTF-8 and escaped lone surrogates, so in practice
a NUL (`\\u0000` in JSON, a raw 0 byte in a header) is what arrives; surrogates are checked
anyway, since the rule must not depend on which parser ran first.
"""

from __future__ import annotations

import re

NUL = "must not contain NUL characters"
SURROGATE = "must not contain unpaired surrogates"
# A Python str holds a surrogate only when it is unpaired (a pair is one code point).
_BAD = re.compile("[\x00\ud800-\udfff]")


def problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None when it can."""
    found = _BAD.search(text)
    if found is None:
        return None
    return NUL if found.group() == "\x00" else SURROGATE


def storable(text: str) -> bool:
    return _BAD.search(text) is None


def first_problem(value: object) -> tuple[str | None, str] | None:
    """The first string in a decoded JSON value that cannot be stored: (where, why), `where`
    being a path such as `phoneNumbers[1]` or `extra.deep[0].x` (None for a field name, which
    is not repeated back), or None when every string is fine. Iterative: a body nested a few
    thousand levels deep (orjson allows 1024) must not exhaust Python's recursion limit."""
    if _all_storable(value):
        return None  # every request and frame: no paths built for a body that is fine
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            why = problem(item)
            if why is not None:
                return path or None, why
        elif isinstance(item, dict):
            # Reversed onto the stack, so the first field is reported first.
            for key, child in reversed(item.items()):
                why = problem(key) if isinstance(key, str) else None
                if why is not None:
                    return None, why
                stack.append((f"{path}.{key}" if path else key, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", child) for i, child in reversed(list(enumerate(item))))
    return None


def _all_storable(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _BAD.search(item) is not None:
                return False
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and _BAD.search(key) is not None:
                    return False
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
    return True


def describe(found: tuple[str | None, str]) -> str:
    """`found` (from first_problem) as an error message."""
    where, why = found
    return f"{where} {why}" if where else f"a field name {why}"
