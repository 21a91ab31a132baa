"""SQL of reading messages back (GET /api/messages and /api/messages/{id})."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from smsnodes_hub.auth.accounts import Executor

# -- Reading, for the status API ----------------------------------------------------------------

_MESSAGE_COLUMNS = """
    m.id, m.device_id, m.priority, m.state, m.attempt, m.body, m.created_at, m.scheduled_at,
    m.expires_at, m.accepted_at,
    m.status,
    ARRAY(SELECT row(r.position, r.number, r.state, r.error, r.attempt, r.updated_at)
            FROM recipients r WHERE r.message_id = m.id ORDER BY r.position) AS recipients
"""


async def get_message(
    db: Executor, account_id: int, message_id: int
) -> tuple[asyncpg.Record, list[asyncpg.Record]] | None:
    """The message with its recipients and its events in time order, or None."""
    row = await db.fetchrow(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages m "  # noqa: S608
        "WHERE m.id = $1 AND m.account_id = $2",
        message_id, account_id,
    )
    if row is None:
        return None
    # A `dispatched` event names its phone (events from before routing existed have none:
    # their message never changed phones, so it is the message's).
    events = await db.fetch(
        """SELECT e.position, e.status, e.error, e.attempt, e.at, e.reported_at,
                  CASE WHEN e.status = 'dispatched'
                       THEN (SELECT d.username FROM devices d
                              WHERE d.id = coalesce(e.device_id, $2)) END AS device
             FROM message_timeline e WHERE e.message_id = $1 ORDER BY e.at, e.id""",
        message_id, row["device_id"],
    )
    return row, events


@dataclass(frozen=True, slots=True)
class MessageFilter:
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    recipient_mac: bytes | None = None


async def list_messages(
    db: Executor, account_id: int, filters: MessageFilter, limit: int, offset: int
) -> tuple[int, list[asyncpg.Record]]:
    """A page of the account's messages, newest first, and the total that match."""
    where = """m.account_id = $1
        AND ($2::text IS NULL OR m.status = $2)
        AND ($3::timestamptz IS NULL OR m.created_at >= $3)
        AND ($4::timestamptz IS NULL OR m.created_at < $4)
        AND ($5::bytea IS NULL OR EXISTS (
               SELECT 1 FROM recipients y WHERE y.message_id = m.id AND y.number_mac = $5))"""
    args = (account_id, filters.status, filters.since, filters.until, filters.recipient_mac)
    total = await db.fetchval(f"SELECT count(*) FROM messages m WHERE {where}", *args)  # noqa: S608
    rows = await db.fetch(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE {where} "  # noqa: S608
        "ORDER BY m.created_at DESC, m.id DESC LIMIT $6 OFFSET $7",
        *args, limit, offset,
    )
    return int(total), rows
