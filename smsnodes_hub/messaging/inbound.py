"""Received SMS, read back by their owner (GET /api/inbound). They are stored by
messages.store_inbound, in the same statement that queues their `sms.received` event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from smsnodes_hub.auth.accounts import Executor

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
