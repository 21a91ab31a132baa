"""The event payloads as a receiver gets them: decrypted for their owner while the account's
key is in memory, else without what only that key opens, and saying so (`redacted`)."""

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


# Fields sealed with the account's data key, per kind of event: left out without it.
MESSAGE_SEALED = ("to", "message")
INBOUND_SEALED = ("from", "message")


def _open(principal: Principal, blob: bytes | None, purpose: str) -> str | None:
    if blob is None:
        return None
    try:
        return principal.open(blob, purpose)
    except DecryptionError:
        log.warning("a stored ciphertext of account %s does not open", principal.account_id)
        return None


def build_event(principal: Principal | None, row: asyncpg.Record) -> dict[str, Any]:
    """The event as the receiver gets it: numbers and texts decrypted for their owner when
    `principal` (the account's key) is given; else those fields are left out and named in
    `redacted`, which is empty when nothing is missing."""
    kind = row["event_type"]
    device = {"deviceId": row["device_id"], "username": row["username"]}
    data: dict[str, Any]
    if kind.startswith("message."):
        data = {"messageId": row["message_id"]}
        if principal is not None:
            data["to"] = _open(principal, row["recipient_number"], NUMBER_PURPOSE)
        data |= {"status": row["status"], "error": row["error"], "attempt": row["attempt"]}
        if principal is not None:
            data["message"] = _open(principal, row["message_body"], TEXT_PURPOSE)
        data |= {**device, "redacted": [] if principal else list(MESSAGE_SEALED)}
    elif kind == "sms.received":
        data = {"inboundId": row["inbound_id"]}
        if principal is not None:
            data["from"] = _open(principal, row["inbound_sender"], INBOUND_SENDER_PURPOSE)
            data["message"] = _open(principal, row["inbound_body"], INBOUND_TEXT_PURPOSE)
        data |= {"receivedAt": iso(row["received_at"]), **device,
                 "redacted": [] if principal else list(INBOUND_SEALED)}
    else:
        data = device
    return {"id": event_id(row["event_id"]), "type": kind, "createdAt": iso(row["created_at"]),
            "data": data}
