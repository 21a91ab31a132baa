"""Received SMS, read back by their owner (GET /api/inbound). They are stored by
store_inbound (below), in the same statement that queues their `sms.received` event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from smsnodes_hub.auth.accounts import Executor, Principal
from smsnodes_hub.messaging.messages import INBOUND_SENDER_PURPOSE, INBOUND_TEXT_PURPOSE

_COLUMNS = "id, device_id, sender, body, received_at, created_at"


@dataclass(frozen=True, slots=True)
class InboundFilter:
    sender_mac: bytes | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_inbound(
    db: Executor, account_id: int, filters: InboundFilter, limit: int, offset: int
) -> tuple[int, list[asyncpg.Record]]:
    """A page of the account's received SMS, newest first, and the total that match."""
    where = """account_id = $1
        AND ($2::bytea IS NULL OR sender_mac = $2)
        AND ($3::timestamptz IS NULL OR received_at >= $3)
        AND ($4::timestamptz IS NULL OR received_at < $4)"""
    args = (account_id, filters.sender_mac, filters.since, filters.until)
    total = await db.fetchval(
        f"SELECT count(*) FROM inbound_messages WHERE {where}", *args  # noqa: S608
    )
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM inbound_messages WHERE {where} "  # noqa: S608
        "ORDER BY received_at DESC, id DESC LIMIT $5 OFFSET $6",
        *args, limit, offset,
    )
    return int(total), rows


async def get_inbound(db: Executor, account_id: int, inbound_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(
        f"SELECT {_COLUMNS} FROM inbound_messages "  # noqa: S608
        "WHERE id = $1 AND account_id = $2",
        inbound_id, account_id,
    )


async def store_inbound(
    db: Executor,
    principal: Principal,
    ref: str | int,
    sender: str,
    text: str,
    received_at: datetime | None,
) -> bool:
    """Store a received SMS once per (device, ref). Returns False for a repeat. An integer
    ref is stored as its decimal text, so 5 and "5" are one SMS; without `received_at`
    the hub's clock stands in."""
    new_id = await db.fetchval(
        """WITH ins AS (
               INSERT INTO inbound_messages (account_id, device_id, ref, sender, body,
                                             received_at, sender_mac)
               VALUES ($1, $2, $3, $4, $5, coalesce($6, now()), $7)
               ON CONFLICT (device_id, ref) DO NOTHING RETURNING id
           ), hook AS (
               SELECT emit_webhook_event($1, 'sms.received', $2, NULL, NULL, ins.id, NULL,
                                         NULL, NULL)
                 FROM ins
           )
           SELECT id FROM ins WHERE (SELECT count(*) FROM hook) >= 0""",
        principal.account_id,
        principal.device_id,
        str(ref),
        principal.seal(sender, INBOUND_SENDER_PURPOSE),
        principal.seal(text, INBOUND_TEXT_PURPOSE),
        received_at,
        principal.number_mac(sender),
    )
    return new_id is not None
