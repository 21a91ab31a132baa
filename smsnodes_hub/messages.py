"""The message queue in PostgreSQL: every SQL statement about messages, recipients, their
events and received SMS lives here. Each function is one round trip, and each commits its
whole effect (state change and event) atomically."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .accounts import Executor, Principal

TEXT_PURPOSE = "message/text"
NUMBER_PURPOSE = "message/number"
INBOUND_SENDER_PURPOSE = "inbound/sender"
INBOUND_TEXT_PURPOSE = "inbound/text"


@dataclass(frozen=True, slots=True)
class Inserted:
    id: int | None  # None: the credentials changed since they were cached
    created_at: datetime | None
    device_online: bool


_INSERT = """
WITH dev AS (
    SELECT id FROM devices WHERE id = $1 AND credential_epoch = $2
), msg AS (
    INSERT INTO messages (account_id, device_id, priority, state, body, recipient_count,
                          dispatched_to, dispatched_at, scheduled_at, expires_at)
    SELECT $3, dev.id, $4, $5, $6, cardinality($7::bytea[]), $8,
           CASE WHEN $5 = 'dispatched' THEN now() END, $9, $10
      FROM dev
    RETURNING id, created_at
), rcp AS (
    INSERT INTO recipients (message_id, position, number, number_mac)
    SELECT msg.id, r.position, r.number, r.mac
      FROM msg, unnest($7::bytea[], $11::bytea[]) WITH ORDINALITY AS r(number, mac, position)
), ev AS (
    INSERT INTO message_events (message_id, status, at)
    SELECT msg.id, s.status, msg.created_at + s.n * interval '1 microsecond'
      FROM msg, unnest(CASE WHEN $5 = 'dispatched' THEN ARRAY['queued', 'dispatched']
                            ELSE ARRAY[$5] END) WITH ORDINALITY AS s(status, n)
), wake AS (
    SELECT pg_notify('smsnodes_hub', 'work:' || $1) FROM msg WHERE $12
)
SELECT msg.id, msg.created_at, (SELECT count(*) FROM wake) AS notified,
       $13 OR EXISTS (
           SELECT 1 FROM device_sessions s JOIN hub_processes p ON p.id = s.process_id
            WHERE s.device_id = $1 AND p.heartbeat_at > now() - make_interval(secs => $14)
       ) AS online
  FROM msg
"""


async def insert(
    db: Executor,
    principal: Principal,
    *,
    priority: int,
    text: str,
    numbers: list[str],
    dispatch_to: uuid.UUID | None,
    notify: bool,
    local_online: bool,
    stale_seconds: float,
    scheduled_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> Inserted:
    """Store a new message encrypted: `dispatched` to `dispatch_to` when the caller already
    holds a free slot on the device's live connection, `queued` otherwise."""
    row = await db.fetchrow(
        _INSERT,
        principal.device_id,
        principal.credential_epoch,
        principal.account_id,
        priority,
        "dispatched" if dispatch_to else "queued",
        principal.seal(text, TEXT_PURPOSE),
        [principal.seal(n, NUMBER_PURPOSE) for n in numbers],
        dispatch_to,
        scheduled_at,
        expires_at,
        [principal.number_mac(n) for n in numbers],
        notify,
        local_online,
        stale_seconds,
    )
    if row is None:
        return Inserted(None, None, local_online)
    return Inserted(row["id"], row["created_at"], row["online"])


_CLAIM = """
WITH picked AS (
    SELECT id FROM messages
     WHERE device_id = $1 AND state = 'queued'
     ORDER BY priority DESC, id
     LIMIT $3
       FOR UPDATE SKIP LOCKED
), upd AS (
    UPDATE messages m SET state = 'dispatched', dispatched_to = $2, dispatched_at = now()
      FROM picked WHERE m.id = picked.id
    RETURNING m.id, m.attempt, m.priority, m.body, m.created_at, m.expires_at
), ev AS (
    INSERT INTO message_events (message_id, status) SELECT id, 'dispatched' FROM upd
)
SELECT upd.id, upd.attempt, upd.priority, upd.body, upd.created_at, upd.expires_at,
       ARRAY(SELECT r.number FROM recipients r
              WHERE r.message_id = upd.id AND r.attempt = upd.attempt
              ORDER BY r.position) AS numbers
  FROM upd
 ORDER BY upd.priority DESC, upd.id
"""


async def claim(
    db: Executor, device_id: int, connection_id: uuid.UUID, limit: int
) -> list[asyncpg.Record]:
    """Mark up to `limit` waiting messages of the device as dispatched to this connection,
    highest priority first, oldest first within a priority."""
    return await db.fetch(_CLAIM, device_id, connection_id, limit)


_ACK = """
WITH upd AS (
    UPDATE messages SET state = 'accepted', accepted_at = now(), dispatched_to = NULL
     WHERE id = $1 AND device_id = $2 AND attempt = $3 AND state IN ('queued', 'dispatched')
    RETURNING id
), ev AS (
    INSERT INTO message_events (message_id, status) SELECT id, 'accepted' FROM upd
)
SELECT (SELECT attempt FROM messages WHERE id = $1 AND device_id = $2) AS attempt,
       (SELECT count(*) FROM upd) AS changed
"""


async def ack(db: Executor, device_id: int, message_id: int, attempt: int) -> int | None:
    """Record that the phone stored the message. Returns the message's current attempt, or
    None when the device has no such message. Repeated acks change nothing."""
    row = await db.fetchrow(_ACK, message_id, device_id, attempt)
    assert row is not None
    return row["attempt"]


@dataclass(frozen=True, slots=True)
class StatusOutcome:
    found: bool
    current_attempt: int | None
    changed: bool
    accepted: bool  # the report also stood in for a lost ack


# The monotonic rule ranks pending < sent < every ending (delivered, failed, ...): a report
# never moves a recipient backwards, and one about an older attempt changes nothing.
_STATUS = """
WITH target AS (
    SELECT m.id, m.state AS message_state, m.attempt AS message_attempt,
           r.position, r.state, r.attempt
      FROM messages m JOIN recipients r ON r.message_id = m.id
     WHERE m.id = $1 AND m.device_id = $2 AND r.number_mac = $3
), upd AS (
    UPDATE recipients r SET state = $5, error = $6, updated_at = now()
      FROM target t
     WHERE r.message_id = t.id AND r.position = t.position AND t.attempt = $4
       AND (CASE t.state WHEN 'pending' THEN 0 WHEN 'sent' THEN 1 ELSE 2 END)
         < (CASE $5::text WHEN 'sent' THEN 1 ELSE 2 END)
    RETURNING r.message_id, r.position
), acc AS (
    UPDATE messages m SET state = 'accepted', accepted_at = now(), dispatched_to = NULL
      FROM (SELECT DISTINCT id, message_attempt FROM target
             WHERE message_state IN ('queued', 'dispatched')) t
     WHERE m.id = t.id AND t.message_attempt = $4
    RETURNING m.id
), ev AS (
    INSERT INTO message_events (message_id, position, status, error, at)
    SELECT id, NULL, 'accepted', NULL, clock_timestamp() FROM acc
    UNION ALL
    SELECT message_id, position, $5, $6, clock_timestamp() + interval '1 microsecond' FROM upd
)
SELECT (SELECT attempt FROM target LIMIT 1) AS attempt,
       EXISTS (SELECT 1 FROM target) AS found,
       (SELECT count(*) FROM upd) AS changed,
       (SELECT count(*) FROM acc) AS accepted
"""


async def record_status(
    db: Executor,
    principal: Principal,
    message_id: int,
    attempt: int,
    number: str,
    status: str,
    error: str | None,
) -> StatusOutcome:
    row = await db.fetchrow(
        _STATUS, message_id, principal.device_id, principal.number_mac(number), attempt,
        status, error,
    )
    assert row is not None
    return StatusOutcome(row["found"], row["attempt"], row["changed"] > 0, row["accepted"] > 0)


async def message_exists(db: Executor, device_id: int, message_id: int) -> bool:
    return bool(
        await db.fetchval(
            "SELECT 1 FROM messages WHERE id = $1 AND device_id = $2", message_id, device_id
        )
    )


async def store_inbound(
    db: Executor,
    principal: Principal,
    ref: str,
    sender: str,
    text: str,
    received_at: datetime,
) -> bool:
    """Store a received SMS once per (device, ref). Returns False for a repeat."""
    new_id = await db.fetchval(
        """INSERT INTO inbound_messages (account_id, device_id, ref, sender, body, received_at)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (device_id, ref) DO NOTHING RETURNING id""",
        principal.account_id,
        principal.device_id,
        ref,
        principal.seal(sender, INBOUND_SENDER_PURPOSE),
        principal.seal(text, INBOUND_TEXT_PURPOSE),
        received_at,
    )
    return new_id is not None


async def requeue_connection(db: Executor, device_id: int, connection_id: uuid.UUID) -> int:
    """Messages in flight on a connection that closed wait again, same id and attempt."""
    result = await db.execute(
        """UPDATE messages SET state = 'queued', dispatched_to = NULL
            WHERE device_id = $1 AND state = 'dispatched' AND dispatched_to = $2""",
        device_id,
        connection_id,
    )
    return int(result.split()[-1])


async def requeue_orphans(
    db: Executor, grace_seconds: float, stale_seconds: float
) -> list[int]:
    """Messages dispatched to a connection that no live process holds (the process died, or
    lost a race with a reconnect) go back to the queue. Returns the devices concerned."""
    rows = await db.fetch(
        """UPDATE messages m SET state = 'queued', dispatched_to = NULL
            WHERE m.state = 'dispatched'
              AND m.dispatched_at < now() - make_interval(secs => $1)
              AND NOT EXISTS (
                  SELECT 1 FROM device_sessions s JOIN hub_processes p ON p.id = s.process_id
                   WHERE s.connection_id = m.dispatched_to
                     AND p.heartbeat_at > now() - make_interval(secs => $2))
        RETURNING m.device_id""",
        grace_seconds,
        stale_seconds,
    )
    return sorted({r["device_id"] for r in rows})
