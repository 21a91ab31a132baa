"""The event payloads as a receiver gets them, decrypted for their owner."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from smsnodes_hub.auth.accounts import Principal
from smsnodes_hub.auth.crypto import DecryptionError
from smsnodes_hub.messaging.messages import (
    INBOUND_SENDER_PURPOSE,
    INBOUND_TEXT_PURPOSE,
    NUMBER_PURPOSE,
    TEXT_PURPOSE,
)
from smsnodes_hub.timefmt import iso
from smsnodes_hub.webhooks.signing import event_id

log = logging.getLogger(__name__)


def _open(principal: Principal, blob: bytes | None, purpose: str) -> str | None:
    if blob is None:
        return None
    try:
        return principal.open(blob, purpose)
    except DecryptionError:
        log.warning("a stored ciphertext of account %s does not open", principal.account_id)
        return None


def build_event(principal: Principal, row: asyncpg.Record) -> dict[str, Any]:
    """The event as the receiver gets it: numbers and texts decrypted for their owner."""
    kind = row["event_type"]
    device = {"deviceId": row["device_id"], "username": row["username"]}
    data: dict[str, Any]
    if kind.startswith("message."):
        data = {
            "messageId": row["message_id"],
            "to": _open(principal, row["recipient_number"], NUMBER_PURPOSE),
            "status": row["status"],
            "error": row["error"],
            "attempt": row["attempt"],
            "message": _open(principal, row["message_body"], TEXT_PURPOSE),
            **device,
        }
    elif kind == "sms.received":
        data = {
            "inboundId": row["inbound_id"],
            "from": _open(principal, row["inbound_sender"], INBOUND_SENDER_PURPOSE),
            "message": _open(principal, row["inbound_body"], INBOUND_TEXT_PURPOSE),
            "receivedAt": iso(row["received_at"]),
            **device,
        }
    else:
        data = device
    return {"id": event_id(row["event_id"]), "type": kind, "createdAt": iso(row["created_at"]),
            "data": data}
