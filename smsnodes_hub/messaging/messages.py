"""The message queue in PostgreSQL: storing a message, claiming it for a phone, its ack,
requeues, retry rounds and releases. Each function is one statement with its whole effect
(state change and event). Status reports are in reports.py, cancels and expiry in
withdrawal.py, reads in history.py, received SMS in inbound.py."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from smsnodes_hub.auth.accounts import Executor, Principal

TEXT_PURPOSE = "message/text"
NUMBER_PURPOSE = "message/number"
INBOUND_SENDER_PURPOSE = "inbound/sender"
INBOUND_TEXT_PURPOSE = "inbound/text"
# A message's overall status (HTTP-API.md, the stored `messages.status`), in lifecycle order.
STATUSES = (
    "scheduled", "queued", "dispatched", "accepted", "sent", "delivered", "failed",
    "expired", "cancelled", "partial",
)


@dataclass(frozen=True, slots=True)
class Inserted:
    id: int | None  # None: the credentials changed since they were cached
    created_at: datetime | None
    device_online: bool


# Set-based: one input row per message, its recipients flattened beside (`rcp_n` names
# each one's message). Ids are drawn first so that every input row knows its own.
_INSERT = """
WITH input AS (
    SELECT i.*, nextval(pg_get_serial_sequence('messages', 'id')) AS id
      FROM unnest($1::bigint[], $2::integer[], $3::bigint[], $4::smallint[], $5::text[],
                  $6::bytea[], $7::smallint[], $8::uuid[], $9::timestamptz[],
                  $10::timestamptz[], $11::boolean[], $12::boolean[], $13::bigint[],
                  $19::smallint[])
           WITH ORDINALITY AS i(device_id, epoch, account_id, priority, state, body,
                                recipient_count, dispatch_to, scheduled_at, expires_at,
                                notify, local_online, token_id, sim, n)
     -- The credentials the caller used are still those of the device (and the token
     -- still exists): a password change or a revoked token since they were cached stops it.
     WHERE EXISTS (SELECT 1 FROM devices d WHERE d.id = i.device_id
                                             AND d.credential_epoch = i.epoch)
       AND (i.token_id IS NULL OR EXISTS (SELECT 1 FROM tokens t WHERE t.id = i.token_id))
), msg AS (
    -- Every recipient is pending, so the overall status is the message's state.
    INSERT INTO messages (id, account_id, device_id, priority, state, status, body,
                          recipient_count, dispatched_to, dispatched_at, scheduled_at,
                          expires_at, sim)
    OVERRIDING SYSTEM VALUE
    SELECT id, account_id, device_id, priority, state, state, body, recipient_count,
           dispatch_to, CASE WHEN state = 'dispatched' THEN now() END, scheduled_at,
           expires_at, sim
      FROM input
    RETURNING id, created_at
), rcp AS (
    INSERT INTO recipients (message_id, position, number, number_mac)
    SELECT input.id, r.position, r.number, r.mac
      FROM unnest($14::integer[], $15::smallint[], $16::bytea[], $17::bytea[])
           AS r(n, position, number, mac)
      JOIN input ON input.n = r.n
), ev AS (
    INSERT INTO message_events (message_id, status, attempt, at)
    SELECT input.id, s.status, 1, now() + s.k * interval '1 microsecond'
      FROM input, unnest(CASE WHEN input.state = 'dispatched'
                              THEN ARRAY['queued', 'dispatched']
                              ELSE ARRAY[input.state] END) WITH ORDINALITY AS s(status, k)
), wake AS (
    SELECT pg_notify('smsnodes_hub', 'work:' || device_id)  -- bus.Work, once a device
      FROM (SELECT DISTINCT device_id FROM input WHERE notify AND state = 'queued') d
)
SELECT (SELECT count(*) FROM wake) AS notified, i.n, input.id, now() AS created_at,
       i.local_online OR EXISTS (SELECT 1 FROM live_sessions($18) s
                                  WHERE s.device_id = i.device_id) AS online
  FROM unnest($1::bigint[], $12::boolean[]) WITH ORDINALITY AS i(device_id, local_online, n)
  LEFT JOIN input ON input.n = i.n
 ORDER BY i.n
"""


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to store, sealed already (so that a batch's transaction holds its
    connection only for the statement). See `new_message`."""

    device_id: int
    credential_epoch: int
    account_id: int
    token_id: int | None
    priority: int
    state: str
    body: bytes
    numbers: list[bytes]
    macs: list[bytes]
    dispatch_to: uuid.UUID | None
    scheduled_at: datetime | None
    expires_at: datetime | None
    notify: bool
    local_online: bool
    stale_seconds: float
    sim: int | None = None


def new_message(
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
    sim: int | None = None,
) -> NewMessage:
    """A new message: `scheduled` when it has a future time, `dispatched` to `dispatch_to`
    when the caller already holds a free slot on the device's live connection, `queued`
    otherwise."""
    if scheduled_at is not None:
        state = "scheduled"
    elif dispatch_to is not None:
        state = "dispatched"
    else:
        state = "queued"
    return NewMessage(
        principal.phone_id, principal.credential_epoch, principal.account_id,
        principal.token_id, priority, state, principal.seal(text, TEXT_PURPOSE),
        [principal.seal(n, NUMBER_PURPOSE) for n in numbers],
        [principal.number_mac(n) for n in numbers],
        dispatch_to, scheduled_at, expires_at, notify, local_online, stale_seconds, sim,
    )


async def insert_all(db: Executor, batch: Sequence[NewMessage]) -> list[Inserted]:
    """Store these messages in one statement; each answer says its id (None: the
    credentials changed since they were cached) and whether its device is online."""
    rcp_n: list[int] = []
    positions: list[int] = []
    for n, m in enumerate(batch, start=1):
        rcp_n += [n] * len(m.numbers)
        positions += range(1, len(m.numbers) + 1)
    rows = await db.fetch(
        _INSERT,
        [m.device_id for m in batch], [m.credential_epoch for m in batch],
        [m.account_id for m in batch], [m.priority for m in batch],
        [m.state for m in batch], [m.body for m in batch],
        [len(m.numbers) for m in batch], [m.dispatch_to for m in batch],
        [m.scheduled_at for m in batch], [m.expires_at for m in batch],
        [m.notify for m in batch], [m.local_online for m in batch],
        [m.token_id for m in batch],
        rcp_n, positions, [x for m in batch for x in m.numbers],
        [x for m in batch for x in m.macs],
        max((m.stale_seconds for m in batch), default=0.0),
        [m.sim for m in batch],
    )
    return [Inserted(r["id"], r["created_at"] if r["id"] is not None else None, r["online"])
            for r in rows]


async def insert(db: Executor, message: NewMessage) -> Inserted:
    """One message alone (inside a caller's transaction: an idempotency key)."""
    return (await insert_all(db, [message]))[0]


# Set-based: one input row per phone's claim (a phone claims one at a time).
_CLAIM = """
WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::integer[], $4::integer[])
              WITH ORDINALITY AS i(device_id, connection_id, lim, max_recipients, n)
), head AS (
    SELECT i.n, i.connection_id, i.max_recipients, h.id, h.attempt
      FROM input i CROSS JOIN LATERAL (
        SELECT id, attempt FROM messages
         WHERE device_id = i.device_id AND state = 'queued'
           AND (expires_at IS NULL OR expires_at > now())
         ORDER BY priority DESC, id
         LIMIT i.lim
           FOR UPDATE SKIP LOCKED) h
), picked AS (
    -- With pacing (max_recipients set), the head of the queue waits rather than overshoot
    -- the limit. It is judged by the recipients of its current attempt: a retry carries
    -- only those.
    SELECT n, connection_id, id FROM head
     WHERE max_recipients IS NULL
        OR (SELECT count(*) FROM recipients r
             WHERE r.message_id = head.id AND r.attempt = head.attempt) <= max_recipients
), upd AS (
    -- Its current attempt's recipients are pending, so the overall status is 'dispatched'.
    UPDATE messages m SET state = 'dispatched', status = 'dispatched',
           dispatched_to = picked.connection_id, dispatched_at = now()
      FROM picked WHERE m.id = picked.id
    RETURNING picked.n, m.id, m.attempt, m.priority, m.body, m.created_at, m.expires_at, m.sim
), ev AS (
    INSERT INTO message_events (message_id, status, attempt)
    SELECT id, 'dispatched', attempt FROM upd
)
SELECT upd.n, upd.id, upd.attempt, upd.priority, upd.body, upd.created_at, upd.expires_at,
       upd.sim,
       ARRAY(SELECT r.number FROM recipients r
              WHERE r.message_id = upd.id AND r.attempt = upd.attempt
              ORDER BY r.position) AS numbers
  FROM upd
 ORDER BY upd.n, upd.priority DESC, upd.id
"""


@dataclass(frozen=True, slots=True)
class Claim:
    """Up to `limit` waiting messages of the device for this connection. With
    `max_recipients` (pacing) at most one message, and only if it has no more recipients
    than that."""

    device_id: int
    connection_id: uuid.UUID
    limit: int
    max_recipients: int | None = None


async def claim_all(db: Executor, claims: Sequence[Claim]) -> list[list[asyncpg.Record]]:
    """Mark waiting messages as dispatched to each claim's connection, highest priority
    first, oldest first within a priority, in one statement; each claim gets its rows."""
    rows = await db.fetch(
        _CLAIM, [c.device_id for c in claims], [c.connection_id for c in claims],
        [1 if c.max_recipients is not None else c.limit for c in claims],
        [c.max_recipients for c in claims],
    )
    out: list[list[asyncpg.Record]] = [[] for _ in claims]
    for row in rows:
        out[row["n"] - 1].append(row)
    return out


async def claim(db: Executor, device_id: int, connection_id: uuid.UUID, limit: int,
                max_recipients: int | None = None) -> list[asyncpg.Record]:
    """One claim alone (see `claim_all`)."""
    return (await claim_all(db, [Claim(device_id, connection_id, limit, max_recipients)]))[0]


_ACK = """
WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::integer[])
              WITH ORDINALITY AS i(id, device_id, attempt, n)
), upd AS (
    -- Still queued or dispatched, no report of this attempt came yet: its recipients are
    -- pending, so the overall status is 'accepted'. A message acked twice in one batch
    -- joins twice and is updated once.
    UPDATE messages m SET state = 'accepted', status = 'accepted', accepted_at = now(),
           dispatched_to = NULL
      FROM input i
     WHERE m.id = i.id AND m.device_id = i.device_id AND m.attempt = i.attempt
       AND m.state IN ('queued', 'dispatched')
    RETURNING m.id, m.attempt
), ev AS (
    INSERT INTO message_events (message_id, status, attempt)
    SELECT id, 'accepted', attempt FROM upd
)
SELECT m.attempt
  FROM input i LEFT JOIN messages m ON m.id = i.id AND m.device_id = i.device_id
 ORDER BY i.n
"""


@dataclass(frozen=True, slots=True)
class Ack:
    device_id: int
    message_id: int
    attempt: int


async def ack_all(db: Executor, acks: Sequence[Ack]) -> list[int | None]:
    """Record that phones stored these messages, in one statement. Returns each message's
    current attempt, or None when its device has no such message. Repeated acks change
    nothing."""
    # Message order: concurrent transactions then lock rows in the same order.
    order = sorted(range(len(acks)), key=lambda k: acks[k].message_id)
    rows = await db.fetch(_ACK, [acks[k].message_id for k in order],
                          [acks[k].device_id for k in order], [acks[k].attempt for k in order])
    currents: list[int | None] = [None] * len(acks)
    for k, row in zip(order, rows, strict=True):
        currents[k] = row["attempt"]
    return currents


async def withdrawn(db: Executor, device_id: int, message_ids: list[int]) -> None:
    """The phone was sent `cancel` for these: nothing more to tell it."""
    await db.execute(
        "UPDATE messages SET withdraw_pending = false WHERE device_id = $1 AND id = ANY($2)",
        device_id, message_ids,
    )


# A queued row that cannot be opened ends failed (its recipients too) rather than wait to
# be claimed, and fail, again forever.
_FAIL_UNREADABLE = """
WITH m AS (
    UPDATE messages SET state = 'done', dispatched_to = NULL
     WHERE id = $1 AND device_id = $2 AND state = 'dispatched'
    RETURNING id, account_id, device_id, attempt
), r AS (
    UPDATE recipients SET state = 'failed', error = $3, updated_at = now()
     WHERE message_id IN (SELECT id FROM m) AND state IN ('pending', 'retry')
    RETURNING message_id, position, attempt
), ev AS (
    INSERT INTO message_events (message_id, position, status, attempt, error)
    SELECT message_id, position, 'failed', attempt, $3 FROM r
)
SELECT emit_webhook_event(m.account_id, 'message.failed', m.device_id, r.message_id,
                          r.position, NULL, 'failed', $3, r.attempt)
  FROM r JOIN m ON m.id = r.message_id
"""


UNREADABLE = "hub: the stored message does not decrypt"


async def fail_unreadable(db: Executor, message_id: int, device_id: int) -> None:
    """A claimed message whose stored text or numbers do not decrypt ends failed, with its
    recipients, events and webhook, instead of being claimed again forever."""
    await db.execute(_FAIL_UNREADABLE, message_id, device_id, UNREADABLE)


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
              AND NOT EXISTS (SELECT 1 FROM live_sessions($2) s
                               WHERE s.connection_id = m.dispatched_to)
        RETURNING m.device_id""",
        grace_seconds,
        stale_seconds,
    )
    return sorted({r["device_id"] for r in rows})


# -- Time: scheduled messages and expiry ----------------------------------------------------------

# Messages dispatched to a live socket of this process that it does not hold in flight (a
# handler cancelled between insert and push, a batch cut short) go back to the queue.
_RECONCILE = """
WITH requeued AS (
UPDATE messages SET state = 'queued', dispatched_to = NULL
 WHERE state = 'dispatched' AND device_id = ANY($1::bigint[])
   AND dispatched_to = ANY($2::uuid[])
   AND dispatched_at < now() - make_interval(secs => $3)
   AND id <> ALL($4::bigint[])
RETURNING device_id
)
SELECT device_id FROM requeued
UNION
-- A safety net for a lost wake-up: a socket with room that believes its queue empty while
-- messages wait is woken (one index probe per such socket, once a heartbeat).
SELECT d FROM unnest($5::bigint[]) AS d
 WHERE EXISTS (SELECT 1 FROM messages m
                WHERE m.device_id = d AND m.state = 'queued'
                  AND (m.expires_at IS NULL OR m.expires_at > now()))
"""


async def reconcile(
    db: Executor, device_ids: list[int], connection_ids: list[uuid.UUID], grace_seconds: float,
    in_flight: list[int], idle_with_room: list[int],
) -> set[int]:
    """Requeue what live sockets here were dispatched but do not hold; return the devices
    (of those and of the idle ones with queued work) whose socket should claim again."""
    rows = await db.fetch(_RECONCILE, device_ids, connection_ids, grace_seconds, in_flight,
                          idle_with_room)
    return {r["device_id"] for r in rows}


_RELEASE_DUE = """
WITH due AS (
    SELECT id FROM messages
     WHERE state = 'scheduled' AND scheduled_at <= now()
       AND (expires_at IS NULL OR expires_at > now())
     ORDER BY scheduled_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), upd AS (
    UPDATE messages m SET state = 'queued' FROM due WHERE m.id = due.id
    RETURNING m.id, m.device_id, m.attempt
), ev AS (
    INSERT INTO message_events (message_id, status, attempt) SELECT id, 'queued', attempt FROM upd
)
SELECT DISTINCT device_id FROM upd
"""


_ADVANCE_ROUNDS = """
WITH due AS (
    SELECT m.id FROM messages m
     -- A recipient waiting for a retry makes the status 'scheduled' (messages_retry_due).
     WHERE m.status = 'scheduled' AND m.state IN ('accepted', 'done')
       AND NOT EXISTS (
           SELECT 1 FROM recipients p WHERE p.message_id = m.id AND p.state = 'pending')
     LIMIT $3
       FOR UPDATE SKIP LOCKED
), m AS (
    UPDATE messages SET attempt = messages.attempt + 1, state = 'scheduled',
           dispatched_to = NULL, dispatched_at = NULL,
           -- Doubling backoff from $1, capped at $2, less up to a quarter of jitter.
           scheduled_at = now() + make_interval(secs =>
               least($2, $1 * 2 ^ (messages.attempt - 1)) * (0.75 + random() * 0.25))
      FROM due WHERE messages.id = due.id
    RETURNING messages.id, messages.attempt, messages.scheduled_at
), r AS (
    -- The failed attempt's error stays in the events; the new attempt starts without one.
    UPDATE recipients SET state = 'pending', attempt = m.attempt, error = NULL,
           updated_at = now()
      FROM m WHERE recipients.message_id = m.id AND recipients.state = 'retry'
)
INSERT INTO message_events (message_id, status, attempt) SELECT id, 'scheduled', attempt FROM m
"""


async def advance_rounds(
    db: Executor, backoff: float, backoff_max: float, limit: int = 500
) -> None:
    """Messages whose round is over (no recipient still pending) and that have recipients
    waiting for a retry start the next attempt with just those, after the backoff."""
    await db.execute(_ADVANCE_ROUNDS, backoff, backoff_max, limit)


async def release_due(db: Executor, limit: int = 1000) -> list[int]:
    """Scheduled messages whose time has come join the queue. Returns the devices to wake.
    Row locks make each message move once, however many hub processes run this."""
    return [r["device_id"] for r in await db.fetch(_RELEASE_DUE, limit)]


