"""The wire vocabulary of device protocol v1 (PROTOCOL.md): constants, time stamps, frames."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from .results import MAX_ERROR

Frame = dict[str, Any]

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024  # the hub closes with 1009 above this
INVALID_CREDENTIALS = "Invalid credentials"
TOO_MANY_ATTEMPTS = "Too many attempts"
# 4401 (credentials rejected) and 4409 (replaced by a newer connection): retrying cannot help.
STOP_CODES = frozenset({4401, 4409})
ABNORMAL_CLOSURE = 1006
STATUSES = frozenset({"sent", "delivered", "failed"})


def utc_now() -> str:
    """ISO 8601 UTC with milliseconds and a Z, as Android's Instant.toString() gives."""
    return iso(datetime.now(UTC))


def iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(value: Any) -> datetime | None:
    """A protocol time stamp, or None for null, absent or unreadable values."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)  # 3.11 accepts the trailing Z
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def encode(frame: Frame) -> str:
    return orjson.dumps(frame).decode()


def decode(data: str) -> Frame | None:
    """A JSON object, or None for anything else (non-JSON, arrays, scalars)."""
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return frame if isinstance(frame, dict) else None


def sms_fingerprint(frame: Frame) -> str:
    """What makes a repeat of an sms frame a repeat: the hub sends the same (id, attempt)
    again with the same recipients, text and creation time. The same pair with other
    content is another message (a hub whose database was replaced counts from 1 again)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(orjson.dumps([frame.get("to"), frame.get("message"), frame.get("createdAt")]))
    return digest.hexdigest()


def sms_key(frame: Frame) -> tuple[int, int] | None:
    """The (id, attempt) idempotency key of an sms frame; attempt defaults to 1."""
    msg_id = frame.get("id")
    attempt = frame.get("attempt") or 1  # "may be left out when it is 1"
    to = frame.get("to")
    if isinstance(msg_id, bool) or isinstance(attempt, bool):
        return None
    if not (isinstance(msg_id, int) and isinstance(attempt, int) and isinstance(to, list)):
        return None
    return msg_id, attempt


def status_frame(
    ref: str | None, msg_id: int, attempt: int, to: str, status: str, error: str | None = None
) -> Frame:
    frame: Frame = {"type": "status"}
    if ref is not None:
        frame["ref"] = ref
    frame.update(id=msg_id, attempt=attempt, to=to, status=status, at=utc_now())
    if error:  # the hub refuses an empty or over-long error, and the report with it
        frame["error"] = error if len(error) <= MAX_ERROR else error[: MAX_ERROR - 1] + "…"
    return frame


def inbound_frame(ref: str, sender: str, text: str, received_at: str | None = None) -> Frame:
    return {
        "type": "inbound",
        "ref": ref,
        "from": sender,
        "message": text,
        "receivedAt": received_at or utc_now(),
    }
