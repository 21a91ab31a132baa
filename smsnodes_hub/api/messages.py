"""GET /api/messages/{id}, GET /api/messages and DELETE /api/messages/{id}: the status,
history and cancelling of the caller's own messages (another account's ids are 404)."""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

from .. import messages, phones
from ..accounts import Principal
from ..appkeys import HUB, POOL
from ..crypto import DecryptionError
from ..segments import analyze
from ..timefmt import iso, parse_iso
from .auth import authenticate
from .errors import ApiError, json_response

log = logging.getLogger(__name__)

STATUSES = (
    "scheduled", "queued", "dispatched", "accepted", "sent", "delivered", "failed",
    "expired", "cancelled", "partial",
)
DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100


def _message_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(404, f"Message {raw[:40]} not found")
    return int(raw)


def _open(principal: Principal, blob: bytes, purpose: str) -> str | None:
    try:
        return principal.open(blob, purpose)
    except DecryptionError:
        # Tampered or damaged row: show what can be shown, never guess.
        log.warning("a stored ciphertext of account %s does not open", principal.account_id)
        return None


def _recipient_status(message_state: str, recipient_state: str) -> str:
    return message_state if recipient_state == "pending" else recipient_state


def render(principal: Principal, row: asyncpg.Record,
           events: list[asyncpg.Record] | None = None) -> dict[str, Any]:
    """The JSON shape of one message for its owner (text and numbers decrypted)."""
    text = _open(principal, row["body"], messages.TEXT_PURPOSE)
    numbers: dict[int, str | None] = {}
    recipients = []
    for position, number, state, error, attempt, updated_at in row["recipients"]:
        numbers[position] = _open(principal, number, messages.NUMBER_PURPOSE)
        recipients.append({
            "to": numbers[position],
            "status": _recipient_status(row["state"], state),
            "error": error,
            "attempt": attempt,
            "updatedAt": iso(updated_at),
        })
    body: dict[str, Any] = {
        "id": row["id"],
        "status": row["status"],
        "message": text,
        "priority": row["priority"],
        "attempt": row["attempt"],
        "createdAt": iso(row["created_at"]),
        "scheduledAt": iso(row["scheduled_at"]),
        "expiresAt": iso(row["expires_at"]),
        "recipients": recipients,
    }
    if text is not None:
        # As in the send-sms answer: the total over all recipients, and per recipient.
        segmentation = analyze(text)
        body["segments"] = segmentation.segments * len(recipients)
        body["segmentsPerRecipient"] = segmentation.segments
        body["encoding"] = segmentation.encoding
    if events is not None:
        body["events"] = [
            {
                "status": e["status"],
                "to": numbers.get(e["position"]) if e["position"] is not None else None,
                "at": iso(e["at"]),
                "attempt": e["attempt"],
                **({"error": e["error"]} if e["error"] else {}),
            }
            for e in events
        ]
    return body


async def get_message(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    message_id = _message_id(request)
    found = await messages.get_message(request.app[POOL], principal.account_id, message_id)
    if found is None:
        raise ApiError(404, f"Message {message_id} not found")
    row, events = found
    return json_response(render(principal, row, events))


def _time_param(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_iso(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an ISO 8601 timestamp") from None


def _int_param(request: web.Request, name: str, default: int, high: int | None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1 or (high is not None and int(raw) > high):
        bound = f" to {high}" if high is not None else " or more"
        raise ApiError(400, f"{name} must be a whole number from 1{bound}")
    return int(raw)


async def list_messages(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        raise ApiError(400, f"status must be one of {', '.join(STATUSES)}")
    recipient = request.query.get("to")
    mac = None
    if recipient is not None:
        try:
            mac = principal.number_mac(phones.normalize(recipient))
        except phones.InvalidNumber:
            raise ApiError(400, "to must be a phone number") from None
    filters = messages.MessageFilter(
        status=status,
        since=_time_param(request, "since"),
        until=_time_param(request, "until"),
        recipient_mac=mac,
    )
    page = _int_param(request, "page", 1, 1_000_000)
    per_page = _int_param(request, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    total, rows = await messages.list_messages(
        request.app[POOL], principal.account_id, filters, per_page, (page - 1) * per_page
    )
    return json_response({
        "data": [render(principal, row) for row in rows],
        "page": page,
        "perPage": per_page,
        "total": total,
        "totalPages": math.ceil(total / per_page),
    })


async def cancel_message(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    message_id = _message_id(request)
    pool = request.app[POOL]
    try:
        withdrawn = await messages.cancel(pool, principal.account_id, message_id)
    except messages.NotFound:
        raise ApiError(404, f"Message {message_id} not found") from None
    except messages.NothingToCancel:
        raise ApiError(
            409, f"Message {message_id} cannot be cancelled: every recipient was already sent "
                 "or has ended"
        ) from None
    if withdrawn.on_phone:
        await request.app[HUB].withdraw(withdrawn.device_id, message_id)
    found = await messages.get_message(pool, principal.account_id, message_id)
    assert found is not None
    return json_response(render(principal, *found))
