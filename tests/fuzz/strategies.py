"""Hypothesis strategies for hostile input: JSON values of every type and size, strings the
database cannot store, timestamps at the edges of the calendar, numbers beyond 64 bits,
bodies that are not JSON or not UTF-8, nested thousands deep or over the size limit."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

NUL = "\x00"
LIMIT = 64 * 1024

# Strings chosen to hit a rule: NUL and lone surrogates (never storable), controls, bidi
# overrides, SQL and path tricks, digits beyond int()'s 4300-digit limit, timestamps whose
# UTC falls off the calendar.
NASTY_STRINGS = [
    "", " ", NUL, f"a{NUL}b", "\ud800", "\udcff", "a\ud83d", "\x01\x1f\x7f", "\u202e\u2066",
    "\ufeff", "💥", "\U0001d7d8\U0001d7d9", "\u00b2\u00b3", "\u0663", "null", "true", "[]",
    "{}", "0", "-1", "1e400",
    "' OR '1'='1", "'; DROP TABLE messages; --", "../../etc/passwd", "%00", "%s%n",
    "\\u0000", "<script>", "x" * 300, "9" * 5000, "+" + "1" * 20, "+123456789012345",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z", "2026-02-30T00:00:00Z", "2026-11-21T10:00:00", "20261121T1000Z",
    "2026-11-21T10:00:00+25:00", "2026-11-21", "T", "Z", "2100-01-01T00:00:00Z",
]
texts = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=12),  # surrogates too
    st.sampled_from(NASTY_STRINGS),
)
big_ints = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**62, 2**62 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1,
                     10**30, -(10**30)]),
)
floats = st.floats(allow_nan=True, allow_infinity=True)
scalars = st.one_of(st.none(), st.booleans(), big_ints, floats, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(texts, inner, max_size=5)),
    max_leaves=12,
)


def anything_or(*good: Any) -> st.SearchStrategy[Any]:
    """Mostly the given (plausible) values, else any JSON value at all."""
    return st.one_of(st.sampled_from(good), st.sampled_from(good), json_values)


def encode(value: Any, ascii_only: bool) -> bytes:
    """JSON text as a careless client writes it: lone surrogates as \\ud800 escapes (which
    no JSON parser should accept), or as raw bytes that are not UTF-8; NaN and Infinity as
    the bare words; integers of any size."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def json_body(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> bytes:
    """An object of the endpoint's fields (each present or not), maybe with extra ones."""
    chosen = draw(st.fixed_dictionaries({}, optional=fields))
    if draw(st.integers(0, 5)) == 0:
        chosen.update(draw(st.dictionaries(texts, json_values, max_size=3)))
    return encode(chosen, draw(st.booleans()))


def _nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def _recipients(count: int, short: bool) -> bytes:
    number = (lambda i: f"{100 + i % 900}") if short else (lambda i: f"+1555{i:07d}")
    return json.dumps({"phoneNumbers": [number(i) for i in range(count)]}).encode()


@st.composite
def broken_body(draw: st.DrawFn, valid: bytes) -> bytes:
    """Anything but a well-formed JSON object of sensible size."""
    kind = draw(st.sampled_from(["binary", "cut", "flip", "utf8", "nested", "huge", "edge",
                                 "not-object", "empty", "recipients", "nul-byte"]))
    if kind == "binary":
        return draw(st.binary(max_size=200))
    if kind == "cut":
        return valid[: draw(st.integers(0, max(len(valid) - 1, 0)))]
    if kind == "flip":
        at = draw(st.integers(0, max(len(valid) - 1, 0)))
        return valid[:at] + bytes([draw(st.integers(0, 255))]) + valid[at + 1:]
    if kind == "utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                                    b"\xc0\x80", b"\x80"]))
        return b'{"message": "' + bad + b'", "name": "x' + bad + b'"}'
    if kind == "nested":
        depth = draw(st.sampled_from([100, 1023, 1024, 1025, 5000, 20000]))
        return _nested(depth, draw(st.sampled_from(["list", "dict"])))
    if kind == "huge":
        size = draw(st.sampled_from([LIMIT - 20, LIMIT - 13, LIMIT, LIMIT + 1, 4 * LIMIT]))
        return b'{"message": "' + b"x" * size + b'"}'
    if kind == "edge":
        return draw(st.sampled_from([
            b'{"priority": 1e400}', b'{"priority": -1e400}', b'{"ttl": 123456789012345678901}',
            b'{"perMinute": 1e3}', b'{"perMinute": 18446744073709551616}', b'{"a": NaN}',
            b'{"a": Infinity}', b'{"a": "\\ud800"}', b'{"a": "\\udfff\\ud800"}',
            b'{"\\u0000": 1}', b'{"a": 1, "a": 2}', b'{"a": 1,}', b"\xef\xbb\xbf{}",
            b'{"a": "\\u0000"}', b"{} {}", b"{}\x00",
        ]))
    if kind == "not-object":
        return encode(draw(st.one_of(scalars, st.lists(scalars, max_size=3))), True)
    if kind == "empty":
        return draw(st.sampled_from([b"", b" ", b"\r\n", b"null"]))
    if kind == "recipients":
        count = draw(st.sampled_from([100, 101, 1000, 10_000]))
        return _recipients(count, short=draw(st.booleans()))
    return valid.replace(b'"', b'"\x00', 1)  # a raw NUL byte inside the JSON text


@st.composite
def body_for(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> bytes:
    valid = draw(json_body(fields))
    if draw(st.integers(0, 3)) == 0:
        return draw(broken_body(valid))
    return valid


# -- Values of the API's fields ---------------------------------------------------------------

timestamps = anything_or("2100-01-01T00:00:00Z", "2020-01-01T00:00:00Z",
                         "2026-11-21T10:00:00.123+02:00", "0001-01-01T00:00:00+01:00",
                         "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59Z")
numbers = anything_or(["+1234567890"], ["123", "+44 20 7946 0958"], [], ["call me"],
                      ["+1234567890", "+1234567890"], [f"+1555{NUL}"], [None], "+1234567890")


def send_fields(username: str, password: str) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "deviceUsername": anything_or(username, username, "nobody", f"{username}{NUL}", ""),
        "password": anything_or(password, password, "wrong", f"{password}{NUL}", ""),
        "phoneNumbers": numbers,
        "message": anything_or("hello", "x" * 1600, "x" * 1601, " ", "é" * 70, "💥"),
        "priority": anything_or(1, 5, 0, 6, None, 1.0, True, "1"),
        "scheduledAt": timestamps,
        "expiresAt": timestamps,
        "ttl": anything_or(60, 1, 0, -1, 31622400, 31622401, 1.5, 2**64),
    }


TOKEN_FIELDS = {"name": anything_or("ci", "x" * 100, "x" * 101, " ", None)}
PACING_FIELDS = {"perMinute": anything_or(10, 1, 0, -1, None, 1.5, True, 10**6, 2**63)}
HOOK_URLS = anything_or("https://93.184.216.34/hooks", "https://hooks.example/x",
                        "http://93.184.216.34/", "https://127.0.0.1/", "https://[::1]/",
                        "https://169.254.169.254/", "https://user:pw@93.184.216.34/",
                        "https://093.184.216.34/", "https://93.184.216.34:0/",
                        "https://93.184.216.34:99999/", "ftp://93.184.216.34/", "https://",
                        "https://0x5d.0xb8.0xd8.0x22/", "https://[fe80::1%25eth0]/",
                        "https://xn--/", "https://a..b.invalid/", "https://" + "a" * 2100)
HOOK_EVENTS = anything_or(["message.expired"], ["sms.received", "message.sent"], [],
                          ["message.expired", "message.expired"], ["nope"], "message.sent")
WEBHOOK_FIELDS = {"url": HOOK_URLS, "events": HOOK_EVENTS}
WEBHOOK_PATCH_FIELDS = {**WEBHOOK_FIELDS, "active": anything_or(True, False, None, 1, "true")}

# Query parameters the lists read, each with plausible and hostile values.
QUERY_VALUES: dict[str, st.SearchStrategy[str]] = {
    "page": st.one_of(st.sampled_from(["1", "2", "0", "-1", "1000000", "1000001", "1.5",
                                       "9" * 19, "9" * 5000, "²", "٣", ""]), texts),
    "per_page": st.one_of(st.sampled_from(["1", "100", "101", "0", "9" * 5000, "x"]), texts),
    "status": st.one_of(st.sampled_from(["queued", "sent", "delivered", "failed", "lost"]),
                        texts),
    "state": st.one_of(st.sampled_from(["pending", "delivered", "failed", "nope"]), texts),
    "since": st.one_of(st.sampled_from(NASTY_STRINGS[-12:]), texts),
    "until": st.one_of(st.sampled_from(NASTY_STRINGS[-12:]), texts),
    "to": st.one_of(st.sampled_from(["+1234567890", "123", "call me", "+1" * 10]), texts),
    "from": st.one_of(st.sampled_from(["+15550001", "AMAZON", " ", "x" * 101]), texts),
}
