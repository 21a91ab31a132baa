"""The message queue in PostgreSQL: claiming messages for a phone (from its own queue and
its account's pool), the ack, requeues and failover, retry rounds and releases. Each
function is one statement with its whole effect (state change and event). Storing a
message (and routing it) is in storing.py, status reports in reports.py, cancels and expiry
in withdrawal.py, reads in history.py, received SMS in inbound.py."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from smsnodes_hub.auth.accounts import Executor

# Storing a message is in storing.py; these names are part of this module's surface too.
from smsnodes_hub.messaging.storing import (  # noqa: F401 - re-exported
    INBOUND_SENDER_PURPOSE,
    INBOUND_TEXT_PURPOSE,
    LOAD_CAP,
    NUMBER_PURPOSE,
    TEXT_PURPOSE,
    Inserted,
    NewMessage,
    insert,
    insert_all,
    new_message,
)
from smsnodes_hub.set_statements import Rows, SetStatement

# A message's overall status (HTTP-API.md, the stored `messages.status`), in lifecycle order.
STATUSES = (
    "scheduled", "queued", "dispatched", "accepted", "sent", "delivered", "failed",
    "expired", "cancelled", "partial",
)


# Set-based: one input row per phone's claim (a phone claims one at a time). A phone takes
# from its own queue and from its account's pool (routed messages no phone could take when
# they came), merged in priority order: rule 2, the pool goes to the first phone with room.
_CLAIM = SetStatement("""
WITH input AS (
    SELECT * FROM {claims}
), own AS (
    SELECT i.n, h.id, h.attempt, h.priority
      FROM input i CROSS JOIN LATERAL (
        SELECT id, attempt, priority FROM messages
         WHERE device_id = i.device_id AND state = 'queued'
           AND (expires_at IS NULL OR expires_at > now())
         ORDER BY priority DESC, id
         LIMIT i.lim
           FOR UPDATE SKIP LOCKED) h
), pooled AS (
    SELECT i.n, h.id, h.attempt, h.priority
      FROM input i CROSS JOIN LATERAL (
        SELECT id, attempt, priority FROM messages
         WHERE account_id = i.account_id AND device_id IS NULL AND state = 'queued'
           AND (expires_at IS NULL OR expires_at > now())
         ORDER BY priority DESC, id
         LIMIT i.lim
           FOR UPDATE SKIP LOCKED) h
), head AS (
    -- The claim's best `lim` of both. (Two phones of one account claiming in one batch may
    -- both see a pool row: the update gives it to one of them.)
    SELECT i.n, i.device_id, i.connection_id, i.max_recipients, u.id, u.attempt
      FROM input i CROSS JOIN LATERAL (
        SELECT b.id, b.attempt FROM (SELECT * FROM own UNION ALL SELECT * FROM pooled) b
         WHERE b.n = i.n ORDER BY b.priority DESC, b.id LIMIT i.lim) u
), picked AS (
    -- With pacing (max_recipients set), the head of the queue waits rather than overshoot
    -- the limit. It is judged by the recipients of its current attempt: a retry carries
    -- only those.
    SELECT n, device_id, connection_id, id FROM head
     WHERE max_recipients IS NULL
        OR (SELECT count(*) FROM recipients r
             WHERE r.message_id = head.id AND r.attempt = head.attempt) <= max_recipients
), upd AS (
    -- Its current attempt's recipients are pending, so the overall status is 'dispatched'.
    UPDATE messages m SET state = 'dispatched', status = 'dispatched',
           device_id = picked.device_id, dispatched_to = picked.connection_id,
           dispatched_at = now()
      FROM picked WHERE m.id = picked.id
    RETURNING picked.n, m.id, m.attempt, m.priority, m.body, m.created_at, m.expires_at, m.sim,
              m.device_id, m.routed
), ev AS (
    INSERT INTO message_events (message_id, status, attempt, device_id)
    SELECT id, 'dispatched', attempt, device_id FROM upd
), taken_back AS (
    -- A phone taking a routed message from the pool need not be told to drop it any more.
    DELETE FROM pending_cancels c USING upd
     WHERE upd.routed AND c.device_id = upd.device_id AND c.message_id = upd.id
)
SELECT upd.n, upd.id, upd.attempt, upd.priority, upd.body, upd.created_at, upd.expires_at,
       upd.sim,
       ARRAY(SELECT r.number FROM recipients r
              WHERE r.message_id = upd.id AND r.attempt = upd.attempt
              ORDER BY r.position) AS numbers
  FROM upd
 ORDER BY upd.n, upd.priority DESC, upd.id
""", claims=Rows("i", ((1, "bigint", "device_id"), (2, "uuid", "connection_id"),
                      (3, "integer", "lim"), (4, "integer", "max_recipients"),
                      (5, "bigint", "account_id"))))


@dataclass(frozen=True, slots=True)
class Claim:
    """Up to `limit` waiting messages of the device for this connection. With
    `max_recipients` (pacing) at most one message, and only if it has no more recipients
    than that."""

    device_id: int
    connection_id: uuid.UUID
    limit: int
    max_recipients: int | None = None
    account_id: int | None = None  # the phone's account: its pool is claimed from too


async def claim_all(db: Executor, claims: Sequence[Claim]) -> list[list[asyncpg.Record]]:
    """Mark waiting messages as dispatched to each claim's connection, highest priority
    first, oldest first within a priority, in one statement; each claim gets its rows."""
    rows = await _CLAIM.fetch(
        db, [c.device_id for c in claims], [c.connection_id for c in claims],
        [1 if c.max_recipients is not None else c.limit for c in claims],
        [c.max_recipients for c in claims], [c.account_id for c in claims],
    )
    out: list[list[asyncpg.Record]] = [[] for _ in claims]
    for row in rows:
        out[row["n"] - 1].append(row)
    return out


# A lone ack (light load) reads its row from plain parameters and keeps its plan (the
# unnest form was planned again at every call: smsnodes_hub/set_statements.py).
_ACK = SetStatement("""
WITH input AS (
    SELECT * FROM {acks}
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
""", acks=Rows("i", ((1, "bigint", "id"), (2, "bigint", "device_id"), (3, "integer", "attempt"))))


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
    rows = await _ACK.fetch(db, [acks[k].message_id for k in order],
                            [acks[k].device_id for k in order], [acks[k].attempt for k in order])
    currents: list[int | None] = [None] * len(acks)
    for k, row in zip(order, rows, strict=True):
        currents[k] = row["attempt"]
    return currents


async def withdrawn(db: Executor, device_id: int, message_ids: list[int]) -> None:
    """The phone was sent `cancel` for these (its own, or routed ones it lost to failover):
    nothing more to tell it."""
    await db.execute(
        """WITH own AS (
               UPDATE messages SET withdraw_pending = false
                WHERE device_id = $1 AND id = ANY($2) AND withdraw_pending
           )
           DELETE FROM pending_cancels WHERE device_id = $1 AND message_id = ANY($2)""",
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


# Failover (rule 3), wherever messages leave a connection that ended: a pinned message waits
# for its phone again, same id and attempt; a routed one goes back to its account's pool
# for whichever phone has room (the account's phones are woken), and the phone it left is
# told to drop it when it comes back (unless it is still in the pool then: it takes it
# back). `gone` names the messages, with their phone, before the move, and whether they were
# pushed to it (a routed message only waiting for the phone needs no cancel).
FAILOVER = """
moved AS (
    UPDATE messages m SET state = 'queued', dispatched_to = NULL,
           device_id = CASE WHEN gone.routed THEN NULL ELSE gone.device_id END
      FROM gone WHERE m.id = gone.id
    RETURNING m.id, gone.device_id, gone.account_id, gone.routed, gone.pushed
), told AS (
    INSERT INTO pending_cancels (device_id, message_id)
    SELECT device_id, id FROM moved WHERE routed AND pushed
    ON CONFLICT DO NOTHING
), pool AS (
    SELECT pg_notify('smsnodes_hub', 'pool:' || account_id)  -- bus.PoolWork
      FROM (SELECT DISTINCT account_id FROM moved WHERE routed) a
)"""

_REQUEUE_CONNECTION = f"""
WITH gone AS (
    SELECT id, device_id, account_id, routed, true AS pushed FROM messages
     WHERE device_id = $1 AND state = 'dispatched' AND dispatched_to = $2
       FOR UPDATE
), {FAILOVER}
SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM pool) AS woken
"""  # noqa: S608 - fixed fragments


async def requeue_connection(db: Executor, device_id: int, connection_id: uuid.UUID) -> int:
    """Messages in flight on a connection that closed wait again (failover, above)."""
    row = await db.fetchrow(_REQUEUE_CONNECTION, device_id, connection_id)
    assert row is not None
    return int(row["moved"])


_REQUEUE_ORPHANS = f"""
WITH gone AS (
    SELECT m.id, m.device_id, m.account_id, m.routed, true AS pushed FROM messages m
     WHERE m.state = 'dispatched'
       AND m.dispatched_at < now() - make_interval(secs => $1)
       AND NOT EXISTS (SELECT 1 FROM live_sessions($2) s
                        WHERE s.connection_id = m.dispatched_to)
       FOR UPDATE SKIP LOCKED
), {FAILOVER}
SELECT (SELECT count(*) FROM pool) AS woken,
       ARRAY(SELECT DISTINCT device_id FROM moved WHERE NOT routed) AS devices
"""  # noqa: S608 - fixed fragments


async def requeue_orphans(
    db: Executor, grace_seconds: float, stale_seconds: float
) -> list[int]:
    """Messages dispatched to a connection that no live process holds (the process died, or
    lost a race with a reconnect) go back to the queue, or to the pool (failover, above).
    Returns the phones whose own queue got some."""
    row = await db.fetchrow(_REQUEUE_ORPHANS, grace_seconds, stale_seconds)
    assert row is not None
    return sorted(row["devices"])


_REROUTE_STRANDED = """
WITH gone AS (
    SELECT m.id, m.device_id, m.account_id, m.routed, false AS pushed FROM messages m
     WHERE m.state = 'queued' AND m.routed AND m.device_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM live_sessions($1) s WHERE s.device_id = m.device_id)
       FOR UPDATE SKIP LOCKED
), {FAILOVER}
SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM pool) AS woken
""".replace("{FAILOVER}", FAILOVER)


async def reroute_stranded(db: Executor, stale_seconds: float) -> int:
    """Routed messages waiting for a phone that has no live session go back to the pool."""
    row = await db.fetchrow(_REROUTE_STRANDED, stale_seconds)
    assert row is not None
    return int(row["moved"])


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
-- messages wait for it or in its account's pool is woken (two index probes per such
-- socket, once a heartbeat).
SELECT x.d FROM unnest($5::bigint[], $6::bigint[]) AS x(d, a)
 WHERE EXISTS (SELECT 1 FROM messages m
                WHERE m.device_id = x.d AND m.state = 'queued'
                  AND (m.expires_at IS NULL OR m.expires_at > now()))
    OR EXISTS (SELECT 1 FROM messages m
                WHERE m.account_id = x.a AND m.device_id IS NULL AND m.state = 'queued'
                  AND (m.expires_at IS NULL OR m.expires_at > now()))
"""


async def reconcile(
    db: Executor, device_ids: list[int], connection_ids: list[uuid.UUID], grace_seconds: float,
    in_flight: list[int], idle_with_room: list[tuple[int, int]],
) -> set[int]:
    """Requeue what live sockets here were dispatched but do not hold; return the devices
    (of those and of the idle ones, given as (device, account), with queued work) whose
    socket should claim again."""
    rows = await db.fetch(_RECONCILE, device_ids, connection_ids, grace_seconds, in_flight,
                          [d for d, _a in idle_with_room], [a for _d, a in idle_with_room])
    return {r["device_id"] for r in rows}


_RELEASE_DUE = f"""
WITH due AS (
    SELECT id, device_id, account_id, routed FROM messages
     WHERE state = 'scheduled' AND scheduled_at <= now()
       AND (expires_at IS NULL OR expires_at > now())
     ORDER BY scheduled_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), target AS (
    -- A routed message is routed again as it joins a queue: among the account's connected
    -- phones with room, another than the one it was with first (a retry after a transient
    -- failure goes to another phone when there is one: rule 4), then the least loaded, then
    -- the least recently served; none connected: the pool.
    SELECT due.id, CASE WHEN NOT due.routed THEN due.device_id ELSE (
               SELECT s.device_id FROM live_sessions($2) s
                 JOIN devices d ON d.id = s.device_id
                WHERE d.account_id = due.account_id
                  AND (s.room_at IS NULL OR s.room_at <= now())
                ORDER BY s.device_id IS NOT DISTINCT FROM due.device_id,
                         (SELECT count(*) FROM (SELECT 1 FROM messages q
                                                 WHERE q.device_id = s.device_id
                                                   AND q.state IN ('queued', 'dispatched')
                                                 LIMIT {LOAD_CAP}) w),
                         s.routed_at NULLS FIRST, s.device_id
                LIMIT 1) END AS device_id
      FROM due
), upd AS (
    UPDATE messages m SET state = 'queued', device_id = target.device_id
      FROM target WHERE m.id = target.id
    RETURNING m.id, m.device_id, m.account_id, m.attempt
), ev AS (
    INSERT INTO message_events (message_id, status, attempt) SELECT id, 'queued', attempt FROM upd
)
SELECT DISTINCT device_id, account_id FROM upd
"""  # noqa: S608 - fixed fragments


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


async def release_due(db: Executor, stale_seconds: float,
                      limit: int = 1000) -> list[tuple[int | None, int]]:
    """Scheduled messages whose time has come join their phone's queue, or for routed ones
    the queue of the phone routing chooses now, or the pool. Returns the (device, account)
    pairs to wake (device None: the account's pool). Row locks make each message move once,
    however many hub processes run this."""
    return [(r["device_id"], r["account_id"])
            for r in await db.fetch(_RELEASE_DUE, limit, stale_seconds)]


