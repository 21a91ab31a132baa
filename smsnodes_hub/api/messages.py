"""GET /api/messages/{id}, GET /api/messages and DELETE /api/messages/{id}: the status,
history and cancelling of the caller's own messages (another account's ids are 404)."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from aiohttp import web

from smsnodes_hub.api.auth import authenticate
from smsnodes_hub.api.errors import json_response
from smsnodes_hub.api.pagination import page_params, path_id, time_param
from smsnodes_hub.appkeys import HUB, POOL, SETTINGS
from smsnodes_hub.auth.accounts import Principal
from smsnodes_hub.auth.crypto import DecryptionError
from smsnodes_hub.errors import InvalidRequest, NotFound
from smsnodes_hub.messaging import history, messages, phones, withdrawal
from smsnodes_hub.messaging.segments import analyze
from smsnodes_hub.timefmt import iso

log = logging.getLogger(__name__)


def cannot_cancel(message_id: int, status: str) -> str:
    """The 409 answer's words for a message in `status` (the OpenAPI examples use them)."""
    return withdrawal.NothingToCancel(message_id, status).message


def _message_id(request: web.Request) -> int:
    return path_id(request, "Message")


def open_or_none(principal: Principal, blob: bytes, purpose: str) -> str | None:
    try:
        return principal.open(blob, purpose)
    except DecryptionError:
        # Tampered or damaged row: show what can be shown, never guess.
        log.warning("a stored ciphertext of account %s does not open", principal.account_id)
        return None


def _recipient_status(message_state: str, recipient_state: str) -> str:
    if recipient_state == "pending":
        return message_state
    if recipient_state == "retry":  # failed for now; goes out again in the next round
        return "scheduled"
    return recipient_state


def render(principal: Principal, row: asyncpg.Record,
           events: list[asyncpg.Record] | None = None) -> dict[str, Any]:
    """The JSON shape of one message for its owner (text and numbers decrypted)."""
    text = open_or_none(principal, row["body"], messages.TEXT_PURPOSE)
    numbers: dict[int, str | None] = {}
    recipients = []
    for position, number, state, error, attempt, updated_at in row["recipients"]:
        numbers[position] = open_or_none(principal, number, messages.NUMBER_PURPOSE)
        status = _recipient_status(row["state"], state)
        recipients.append({
            "to": numbers[position],
            "status": status,
            # Only a failure is an outcome; the error of an attempt that will be retried
            # stays in the events.
            "error": error if status == "failed" else None,
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
                # The phone's own clock for its reports; `at` is the hub's.
                **({"reportedAt": iso(e["reported_at"])} if e["reported_at"] else {}),
                # Which phone each attempt went to (ACCOUNTS.md rule 5).
                **({"device": e["device"]} if e["status"] == "dispatched" else {}),
            }
            for e in events
        ]
    return body


async def get_message(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    message_id = _message_id(request)
    found = await history.get_message(request.app[POOL], principal.account_id, message_id)
    if found is None:
        raise NotFound(f"Message {message_id} not found")
    row, events = found
    return json_response(render(principal, row, events))


async def list_messages(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    status = request.query.get("status")
    if status is not None and status not in messages.STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(messages.STATUSES)}")
    recipient = request.query.get("to")
    mac = None
    if recipient is not None:
        try:
            region = request.app[SETTINGS].messaging.default_region or None
            # Read as send-sms reads recipients, so "0612345678" finds +31612345678.
            mac = principal.number_mac(phones.recipient(recipient, "to", region))
        except phones.InvalidNumber:
            raise InvalidRequest("to must be a phone number") from None
    filters = history.MessageFilter(
        status=status,
        since=time_param(request, "since"),
        until=time_param(request, "until"),
        recipient_mac=mac,
    )
    page = page_params(request)
    total, rows = await history.list_messages(
        request.app[POOL], principal.account_id, filters, page.per_page, page.offset
    )
    return json_response(page.body([render(principal, row) for row in rows], total))


async def cancel_message(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    message_id = _message_id(request)
    pool = request.app[POOL]
    withdrawn = await withdrawal.cancel(pool, principal.account_id, message_id)
    if withdrawn.on_phone:
        await request.app[HUB].withdraw(withdrawn.device_id, message_id)
    found = await history.get_message(pool, principal.account_id, message_id)
    assert found is not None
    return json_response(render(principal, *found))
