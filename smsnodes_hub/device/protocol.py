"""Device protocol v1 (PROTOCOL.md): frame parsing, validation and the hub's own frames.

Parsing is strict about types, so a phone gets a precise `error` naming the field instead
of the hub guessing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

import orjson

from smsnodes_hub import storable
from smsnodes_hub.messaging.phones import InvalidNumber, normalize
from smsnodes_hub.timefmt import parse_iso, wire_time

VERSION = 1
MAX_FRAME = 64 * 1024



class CloseCode(IntEnum):
    """Every WebSocket close code the hub sends. PROTOCOL.md names 1001, 1009 and the 44xx
    codes; the others are the hub's own, explained in docs/protocol.md and
    docs/architecture.md ("Close codes beyond the contract"). An operator's Disconnect is a
    normal closure, not a credential problem, so the phone reconnects with its token as after
    any drop; keeping it out is revoking its tokens (4401)."""

    # docs/protocol.md (not PROTOCOL.md): "normal closure"; the hub's is an operator's Disconnect.
    NORMAL = 1000
    # PROTOCOL.md 7: "Hub shutting down: close code 1001."
    GOING_AWAY = 1001
    # docs/protocol.md (not PROTOCOL.md): "the hub's buffer for you filled up".
    SLOW_CONSUMER = 1008
    # PROTOCOL.md: "The hub closes a connection that sends a frame larger than 64 KiB".
    TOO_LARGE = 1009
    # docs/protocol.md (not PROTOCOL.md): "the hub failed unexpectedly while handling ...".
    INTERNAL_ERROR = 1011
    # docs/protocol.md (not PROTOCOL.md): "try again later: the hub could not reach its database".
    TRY_AGAIN = 1013
    # PROTOCOL.md: "a binary frame, or non-JSON (close code 4400)" ("protocol error").
    PROTOCOL_ERROR = 4400
    # PROTOCOL.md 1: "wrong username, password or token" (auth_failed "Invalid credentials").
    INVALID_CREDENTIALS = 4401
    # PROTOCOL.md 1: "no auth frame within 10 s" (auth_failed "Authentication timeout").
    AUTH_TIMEOUT = 4408
    # PROTOCOL.md 1: "the older connection is closed with code 4409 (`replaced`)".
    REPLACED = 4409
    # PROTOCOL.md 1: "too many failed attempts" (auth_failed "Too many attempts").
    TOO_MANY_ATTEMPTS = 4429


INVALID_CREDENTIALS = "Invalid credentials"
AUTH_TIMEOUT = "Authentication timeout"
TOO_MANY_ATTEMPTS = "Too many attempts"

# What a phone may report per recipient (`status` frame).
REPORT_STATUSES = ("sent", "delivered", "failed")
# The longest inbound SMS text a phone may hand in (outbound: api/send_sms.py's MAX_TEXT).
MAX_INBOUND_TEXT = 10_000
MAX_ERROR = 200
# An inbound sender is whatever the network gave the phone: a number, a short code or an
# alphanumeric sender ID ("AMAZON"). Generous, but bounded: it is stored and shown.
MAX_SENDER = 100
# PROTOCOL.md gives `signal` no range: phones send a 0-4 level, ASU or dBm (negative).
SIGNAL_RANGE = (-200, 200)
# Message ids are bigint; attempts are integer columns: a larger one names no attempt, and
# must be refused here rather than fail the statement of a whole batch (was a 1013 close).
MAX_ID = 2**62
MAX_ATTEMPT = 2**31 - 1


class FatalFrame(Exception):
    """The frame breaks the framing rules: the connection is closed with 4400."""


class FrameError(Exception):
    """The frame is understood but invalid: answered with an `error` frame."""

    def __init__(self, message: str, ref: str | int | None = None) -> None:
        super().__init__(message)
        self.ref = ref


@dataclass(frozen=True, slots=True)
class Auth:
    username: str | None
    password: str | None
    token: str | None
    model: str | None
    app: str | None
    sims: int | None


@dataclass(frozen=True, slots=True)
class Ack:
    ref: str | int | None
    id: int
    attempt: int


@dataclass(frozen=True, slots=True)
class Status:
    ref: str | int | None
    id: int
    attempt: int
    to: str
    status: str
    at: datetime | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Inbound:
    ref: str | int  # as sent, so the `ok` echoes it unchanged; stored as text (see key)
    sender: str
    message: str
    received_at: datetime | None  # None: the phone left it out; the hub's time is used

    @property
    def key(self) -> str:
        """The idempotency key as stored: 5 and "5" are the same SMS."""
        return str(self.ref)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    ref: str | int | None
    battery: int | None
    charging: bool | None
    signal: int | None


Frame = Ack | Status | Inbound | Heartbeat


def decode(data: bytes | str) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise FatalFrame("frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise FatalFrame("frame must be a JSON object")
    return obj


def _ref(obj: dict[str, Any]) -> str | int | None:
    ref = obj.get("ref")
    if ref is None or (isinstance(ref, str) and 0 < len(ref) <= 200
                       and storable.storable(ref)):
        return ref
    if isinstance(ref, str) and 0 < len(ref) <= 200:
        raise FrameError(f"ref {storable.problem(ref)}")
    if isinstance(ref, int) and not isinstance(ref, bool):
        return ref
    raise FrameError("ref must be a string of 1 to 200 characters or an integer")


def _int(obj: dict[str, Any], key: str, ref: str | int | None, *, default: int | None = None,
         low: int = 1, high: int = MAX_ID) -> int:
    value = obj.get(key, default)
    if value is None:
        raise FrameError(f"{key} is required", ref)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise FrameError(f"{key} must be an integer from {low} to {high}", ref)
    return value


def _attempt(obj: dict[str, Any], ref: str | int | None) -> int:
    return _int(obj, "attempt", ref, default=1, high=MAX_ATTEMPT)


def _str(obj: dict[str, Any], key: str, ref: str | int | None, *, limit: int,
         required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise FrameError(f"{key} must be a non-empty string of at most {limit} characters", ref)
    return value


def _time(obj: dict[str, Any], key: str, ref: str | int | None,
          required: bool) -> datetime | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise FrameError(f"{key} must be an ISO 8601 timestamp", ref)
    try:
        return parse_iso(value)
    except ValueError:
        raise FrameError(f"{key} must be an ISO 8601 timestamp", ref) from None


def _number(obj: dict[str, Any], key: str, ref: str | int | None) -> str:
    try:
        return normalize(obj.get(key))
    except InvalidNumber:
        raise FrameError(f"{key} must be a phone number", ref) from None


def sender(raw: object) -> str | None:
    """An inbound sender as stored: a phone number cleaned like every other number (so the
    `from` filter and the webhooks see one spelling), anything else trimmed as given.
    None when it is not a non-empty string of at most MAX_SENDER characters."""
    if not isinstance(raw, str):
        return None
    trimmed = raw.strip()
    try:
        return normalize(trimmed)
    except InvalidNumber:
        pass
    if not trimmed or len(trimmed) > MAX_SENDER or not trimmed.isprintable():
        return None
    return trimmed


def parse_auth(obj: dict[str, Any]) -> Auth:
    """Raises FrameError for an auth frame of the wrong shape (answered as bad credentials)."""
    if obj.get("type") != "auth":
        raise FrameError("the first frame must be an auth frame")
    token = obj.get("token")
    username = obj.get("username")
    password = obj.get("password")
    if token is not None:
        if not isinstance(token, str):
            raise FrameError("token must be a string")
    elif not isinstance(username, str) or not isinstance(password, str):
        raise FrameError("auth needs username and password, or token")
    # Username, password and token are left to the login, which refuses (and counts) what no
    # account can have, NUL characters included.
    info = obj.get("device")
    model = app = None
    sims = None
    if isinstance(info, dict):
        model = _informative(info.get("model"))
        app = _informative(info.get("app"))
        raw_sims = info.get("sims")
        if isinstance(raw_sims, int) and not isinstance(raw_sims, bool) and 0 <= raw_sims < 16:
            sims = raw_sims
    return Auth(
        username if token is None else None,
        password if token is None else None,
        token,
        model[:100] if model else None,
        app[:50] if app else None,
        sims,
    )


def _informative(value: object) -> str | None:
    """A description the phone may leave out: what cannot be stored is left out too."""
    return value if isinstance(value, str) and storable.storable(value) else None


def parse(obj: dict[str, Any]) -> Frame:
    """A frame after authentication. Raises FrameError (with the ref when there was one)."""
    ref = _ref(obj)
    found = storable.first_problem(obj)
    if found is not None:
        raise FrameError(storable.describe(found), ref)
    kind = obj.get("type")
    if kind == "ack":
        return Ack(ref, _int(obj, "id", ref), _attempt(obj, ref))
    if kind == "status":
        status = obj.get("status")
        if status not in REPORT_STATUSES:
            raise FrameError("status must be one of sent, delivered, failed", ref)
        error = _str(obj, "error", ref, limit=MAX_ERROR, required=False)
        return Status(
            ref,
            _int(obj, "id", ref),
            _attempt(obj, ref),
            _number(obj, "to", ref),
            status,
            _time(obj, "at", ref, required=False),
            error if status == "failed" else None,
        )
    if kind == "inbound":
        # PROTOCOL.md requires only `ref` (string or integer); an SMS may have an empty body.
        if ref is None:
            raise FrameError("inbound needs a ref (its idempotency key)")
        sent_by = sender(obj.get("from"))
        if sent_by is None:
            raise FrameError(
                f"from must be a non-empty string of at most {MAX_SENDER} characters", ref
            )
        text = obj.get("message") or ""  # absent or null: an SMS without text
        if not isinstance(text, str) or len(text) > MAX_INBOUND_TEXT:
            raise FrameError(
                f"message must be a string of at most {MAX_INBOUND_TEXT} characters", ref
            )
        return Inbound(ref, sent_by, text, _time(obj, "receivedAt", ref, required=False))
    if kind == "heartbeat":
        battery = obj.get("battery")
        charging = obj.get("charging")
        signal = obj.get("signal")
        if battery is not None and (type(battery) is not int or not 0 <= battery <= 100):
            raise FrameError("battery must be an integer from 0 to 100", ref)
        if charging is not None and not isinstance(charging, bool):
            raise FrameError("charging must be true or false", ref)
        low, high = SIGNAL_RANGE
        if signal is not None and (type(signal) is not int or not low <= signal <= high):
            raise FrameError(f"signal must be an integer from {low} to {high}", ref)
        return Heartbeat(ref, battery, charging, signal)
    if kind == "auth":
        raise FrameError("already authenticated", ref)
    if not isinstance(kind, str):
        raise FrameError("frame needs a string type", ref)
    raise FrameError(f"unknown frame type {kind[:40]!r}", ref)


# -- The hub's frames -------------------------------------------------------------------------


def ok(ref: str | int) -> bytes:
    return orjson.dumps({"type": "ok", "ref": ref})


def error(message: str, ref: str | int | None = None) -> bytes:
    if ref is None:
        return orjson.dumps({"type": "error", "error": message})
    return orjson.dumps({"type": "error", "ref": ref, "error": message})


def auth_failed(message: str, retry_after: int | None = None) -> bytes:
    frame: dict[str, Any] = {"type": "auth_failed", "error": message}
    if retry_after is not None:
        frame["retryAfter"] = retry_after
    return orjson.dumps(frame)


def auth_ok(device_id: int, username: str, token: str, heartbeat: int, window: int) -> bytes:
    return orjson.dumps({
        "type": "auth_ok", "deviceId": device_id, "username": username, "token": token,
        "heartbeat": heartbeat, "window": window, "protocol": VERSION,
    })


def cancel(message_id: int) -> bytes:
    return orjson.dumps({"type": "cancel", "id": message_id})


def sms_frame(
    message_id: int,
    attempt: int,
    to: list[str],
    text: str,
    priority: int,
    created_at: datetime,
    expires_at: datetime | None,
    sim: int | None = None,
) -> bytes:
    frame: dict[str, object] = {
        "type": "sms", "id": message_id, "attempt": attempt, "to": to, "message": text,
        "priority": priority, "createdAt": wire_time(created_at),
        "expiresAt": wire_time(expires_at),
    }
    if sim is not None:  # only when the sender chose one: a phone with one SIM ignores it
        frame["sim"] = sim
    return orjson.dumps(frame)
