"""Storing messages: the set-based insert of the sends lane, in one statement per batch.

A phone's send (pinned: its own credentials) names its phone. A send of the account itself
is routed (ACCOUNTS.md "Routing rules" 1-2): the same statement chooses, among the account's
phones connected to any hub process and with pacing room, the one with the fewest messages
waiting for it or in flight, ties to the one given a message least recently; several sends
of one account in one batch are spread as if one after the other. With no such phone the
message waits in the account's pool (`device_id` NULL), and every process holding a phone of
the account is told (`pool:<account>`). An account's send with `device` is pinned to that
phone of the account.

Batches of phones' sends alone (the SMS Nodes API, every earlier script) run the plain
statement, which routes nothing: routing costs only the sends that ask for it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from smsnodes_hub.auth.accounts import Executor, Principal
from smsnodes_hub.set_statements import Rows, SetStatement

TEXT_PURPOSE = "message/text"
NUMBER_PURPOSE = "message/number"
INBOUND_SENDER_PURPOSE = "inbound/sender"
INBOUND_TEXT_PURPOSE = "inbound/text"
# Waiting messages counted per phone when comparing loads: past this, phones tie (and the
# least recently served is chosen), so a deep backlog costs no more to route than this.
LOAD_CAP = 1000


@dataclass(frozen=True, slots=True)
class Inserted:
    id: int | None  # None: the credentials changed since they were cached (or see below)
    created_at: datetime | None
    device_online: bool
    device_id: int | None = None  # the phone it is for; None: waiting in the account's pool
    device: str | None = None  # that phone's name (routed sends)
    dispatched_to: uuid.UUID | None = None  # the connection it was written dispatched to
    unknown_device: bool = False  # `device` named no phone of the account: nothing stored
    remaining_quota: int | None = None  # SMS left of the quota after this one (None: none)
    over_quota: str | None = None  # "day" or "month": refused, it would pass that quota


# Quotas (sql/017): the rows of `{source}` of accounts with a quota, judged one after the
# other in batch order against the account's counter, which is locked (racing sends
# elsewhere wait for this statement, then see its count): as if they came one by one, a
# row that does not fit is refused and counts nothing, so a smaller one after it may still
# fit. `remaining` is what is left after the row, of the smaller period. Accounts without
# a quota have no row: the walk then has no step at all.
_QUOTA = """
quota AS (
    SELECT q.account_id, q.daily, q.monthly,
           CASE WHEN q.day = (now() AT TIME ZONE 'UTC')::date
                THEN q.day_used ELSE 0 END AS day_used,
           CASE WHEN q.month = date_trunc('month', now() AT TIME ZONE 'UTC')::date
                THEN q.month_used ELSE 0 END AS month_used
      FROM quotas q WHERE q.account_id IN (SELECT account_id FROM {source})
     ORDER BY q.account_id
       FOR NO KEY UPDATE
), asked AS (
    SELECT s.n, s.account_id, s.sms,
           row_number() OVER (PARTITION BY s.account_id ORDER BY s.n) AS k
      FROM {source} s WHERE s.account_id IN (SELECT account_id FROM quota)
), walk AS (
    -- Step k judges the account's k-th row against what the rows before it used.
    SELECT q.account_id, 0::bigint AS k, NULL::bigint AS n, NULL::integer AS sms,
           true AS day_ok, true AS month_ok, q.daily, q.monthly, q.day_used, q.month_used
      FROM quota q
    UNION ALL
    SELECT w.account_id, a.k, a.n, a.sms, x.day_ok, x.month_ok, w.daily, w.monthly,
           w.day_used + CASE WHEN x.day_ok AND x.month_ok THEN a.sms ELSE 0 END,
           w.month_used + CASE WHEN x.day_ok AND x.month_ok THEN a.sms ELSE 0 END
      FROM walk w JOIN asked a ON a.account_id = w.account_id AND a.k = w.k + 1
     CROSS JOIN LATERAL (
           SELECT w.daily IS NULL OR w.day_used + a.sms <= w.daily AS day_ok,
                  w.monthly IS NULL OR w.month_used + a.sms <= w.monthly AS month_ok) x
), verdict AS (
    SELECT n, account_id, sms, day_ok, month_ok,
           least(daily - day_used, monthly - month_used) AS remaining
      FROM walk WHERE n IS NOT NULL
), used AS (
    UPDATE quotas q SET day = (now() AT TIME ZONE 'UTC')::date,
           month = date_trunc('month', now() AT TIME ZONE 'UTC')::date,
           day_used = u.day_used, month_used = u.month_used
      FROM (SELECT DISTINCT ON (w.account_id) w.account_id, w.day_used, w.month_used
              FROM walk w ORDER BY w.account_id, w.k DESC) u
     WHERE q.account_id = u.account_id
       AND EXISTS (SELECT 1 FROM verdict v
                    WHERE v.account_id = u.account_id AND v.day_ok AND v.month_ok)
    RETURNING 1
)"""

# A new message's row, from `input`: every recipient is pending, so the overall status is
# the message's state; one written dispatched says when, and to which phone it was stored.
_MESSAGE = """
msg AS (
    INSERT INTO messages (id, account_id, device_id, priority, state, status, body,
                          recipient_count, dispatched_to, dispatched_at, scheduled_at,
                          expires_at, sim, routed, segments, stored_to)
    OVERRIDING SYSTEM VALUE
    SELECT id, account_id, device_id, priority, state, state, body, recipient_count,
           dispatch_to, CASE WHEN state = 'dispatched' THEN now() END, scheduled_at,
           expires_at, sim, routed, segments,
           CASE WHEN state = 'dispatched' THEN device_id END
      FROM input
)"""

_RECIPIENTS_AND_EVENTS = """
rcp AS (
    INSERT INTO recipients (message_id, position, number, number_mac)
    SELECT input.id, r.position, r.number, r.mac
      FROM unnest($14::integer[], $15::smallint[], $16::bytea[], $17::bytea[])
           AS r(n, position, number, mac)
      JOIN input ON input.n = r.n
), ev AS (
    -- A message written dispatched has no event rows: its `stored_to` implies them
    -- (queued, then dispatched to that phone, in message_timeline: sql/022).
    INSERT INTO message_events (message_id, status, attempt, at)
    SELECT input.id, input.state, 1, now() + interval '1 microsecond'
      FROM input WHERE input.state <> 'dispatched'
)"""

# A send's columns, as (parameter, type, name): the quota's counts are $20-$21 of the plain
# statement and $26-$27 of the routed one, whose $20-$25 are its own.
_SEND_COLUMNS = ((1, "bigint", "device_id"), (2, "integer", "epoch"),
                 (3, "bigint", "account_id"), (4, "smallint", "priority"),
                 (5, "text", "state"), (6, "bytea", "body"), (7, "smallint", "recipient_count"),
                 (8, "uuid", "dispatch_to"), (9, "timestamptz", "scheduled_at"),
                 (10, "timestamptz", "expires_at"), (11, "boolean", "notify"),
                 (12, "boolean", "local_online"), (13, "bigint", "token_id"),
                 (19, "smallint", "sim"))
_SENDS = (*_SEND_COLUMNS, (20, "integer", "sms"), (21, "smallint", "segments"))
_ROUTED_SENDS = (*_SEND_COLUMNS, (26, "integer", "sms"), (27, "smallint", "segments"),
                 (20, "boolean", "account_auth"), (21, "text", "device_name"))

# Set-based: one input row per message, its recipients flattened beside (`rcp_n` names
# each one's message). Ids are drawn first so that every input row knows its own.
_INSERT = SetStatement(f"""
WITH RECURSIVE checked AS (
    SELECT i.* FROM {{sends}}
     -- The credentials the caller used are still those of the device (and the token
     -- still exists): a password change or a revoked token since they were cached stops it.
     WHERE EXISTS (SELECT 1 FROM devices d WHERE d.id = i.device_id
                                             AND d.credential_epoch = i.epoch)
       AND (i.token_id IS NULL OR EXISTS (SELECT 1 FROM tokens t WHERE t.id = i.token_id))
), {_QUOTA.format(source="checked")}, input AS (
    SELECT c.*, false AS routed, nextval(pg_get_serial_sequence('messages', 'id')) AS id
      FROM checked c LEFT JOIN verdict v ON v.n = c.n
     WHERE v.n IS NULL OR (v.day_ok AND v.month_ok)
), {_MESSAGE}, {_RECIPIENTS_AND_EVENTS}, wake AS (
    SELECT pg_notify('smsnodes_hub', 'work:' || device_id)  -- bus.Work, once a device
      FROM (SELECT DISTINCT device_id FROM input WHERE notify AND state = 'queued') d
)
SELECT (SELECT count(*) FROM wake) AS notified, (SELECT count(*) FROM used) AS counted,
       i.n, input.id, now() AS created_at, i.device_id, input.dispatch_to,
       v.remaining, NOT v.day_ok AS over_day, NOT v.month_ok AS over_month,
       i.local_online OR EXISTS (SELECT 1 FROM live_sessions($18) s
                                  WHERE s.device_id = i.device_id) AS online
  FROM {{answers}}
  LEFT JOIN input ON input.n = i.n
  LEFT JOIN verdict v ON v.n = i.n
 ORDER BY i.n
""", sends=Rows("i", _SENDS),  # noqa: S608 - fixed fragments
   answers=Rows("i", ((1, "bigint", "device_id"), (12, "boolean", "local_online"))))

# The same with the account's sends: `account_auth` rows are checked against the account's
# credentials; a `device_name` pins the row to that phone of the account (none: an unknown
# device, nothing stored); the others due now are routed. `offer` lists, per row, the
# connections of this process that hold a free slot for it: the row is written dispatched
# to the chosen phone's, if it is among them. $25 is this process.
_INSERT_ROUTED = SetStatement(f"""
WITH RECURSIVE checked AS (
    SELECT i.* FROM {{sends}}
     WHERE CASE WHEN i.account_auth
                THEN EXISTS (SELECT 1 FROM accounts a WHERE a.id = i.account_id
                                                        AND a.credential_epoch = i.epoch)
                ELSE EXISTS (SELECT 1 FROM devices d WHERE d.id = i.device_id
                                                       AND d.credential_epoch = i.epoch)
           END
       AND (i.token_id IS NULL OR EXISTS (SELECT 1 FROM tokens t WHERE t.id = i.token_id))
), known AS (
    -- A `device` the account does not own stores nothing and counts nothing.
    SELECT c.*, d.id AS named_id FROM checked c
      LEFT JOIN devices d ON d.account_id = c.account_id AND d.username = c.device_name
     WHERE c.device_name IS NULL OR d.id IS NOT NULL
), {_QUOTA.format(source="known")}, raw AS (
    SELECT k.* FROM known k LEFT JOIN verdict v ON v.n = k.n
     WHERE v.n IS NULL OR (v.day_ok AND v.month_ok)
), named AS (
    SELECT r.n, r.named_id AS device_id FROM raw r WHERE r.named_id IS NOT NULL
), ask AS (
    -- Routed rows due now, numbered in their account: the k-th takes the k-th slot.
    SELECT r.n, r.account_id, row_number() OVER (PARTITION BY r.account_id ORDER BY r.n) AS k
      FROM raw r WHERE r.account_auth AND r.device_name IS NULL AND r.state = 'queued'
), cand AS (
    -- Rule 1: the account's phones connected now, to any process, with pacing room: the
    -- phone's process says until when its minute is full (room_at), and a paced phone
    -- already given a minute's worth waiting takes no more.
    SELECT d.account_id, d.id AS device_id, s.process_id, s.routed_at,
           q.waiting + q.flying AS load
      FROM devices d JOIN live_sessions($18) s ON s.device_id = d.id
     CROSS JOIN LATERAL (SELECT
           (SELECT count(*) FROM (SELECT 1 FROM messages m
                                   WHERE m.device_id = d.id AND m.state = 'queued'
                                   LIMIT {LOAD_CAP}) w) AS waiting,
           (SELECT count(*) FROM messages m
             WHERE m.device_id = d.id AND m.state = 'dispatched') AS flying) q
     WHERE d.account_id IN (SELECT account_id FROM ask)
       AND (s.room_at IS NULL OR s.room_at <= now())
       AND (d.pace_per_minute IS NULL OR q.waiting < d.pace_per_minute)
), slot AS (
    -- Greedy, as if the batch's sends came one by one: every phone offers the loads it
    -- would have after one more, two more...; ties go to the phone served least recently.
    SELECT c.account_id, c.device_id,
           row_number() OVER (PARTITION BY c.account_id
                              ORDER BY c.load + g.j, c.routed_at NULLS FIRST, c.device_id) AS k
      FROM cand c, generate_series(1, (SELECT count(*)::integer FROM ask)) AS g(j)
), chosen AS (
    SELECT a.n, s.device_id FROM ask a JOIN slot s ON s.account_id = a.account_id AND s.k = a.k
), offer AS (
    SELECT * FROM unnest($22::integer[], $23::bigint[], $24::uuid[]) AS o(n, device_id, conn)
), input AS (
    SELECT r.n, r.account_id, r.priority, r.body, r.recipient_count, r.scheduled_at,
           r.expires_at, r.sim, r.segments, r.notify, r.local_online,
           r.account_auth AND r.device_name IS NULL AS routed, t.device_id,
           CASE WHEN o.conn IS NOT NULL THEN 'dispatched' ELSE r.state END AS state,
           coalesce(r.dispatch_to, o.conn) AS dispatch_to,
           nextval(pg_get_serial_sequence('messages', 'id')) AS id
      FROM raw r
      LEFT JOIN named nm ON nm.n = r.n
      LEFT JOIN chosen c ON c.n = r.n
     CROSS JOIN LATERAL (SELECT CASE WHEN r.device_name IS NOT NULL THEN nm.device_id
                                     WHEN r.account_auth THEN c.device_id
                                     ELSE r.device_id END AS device_id) t
      LEFT JOIN offer o ON o.n = r.n AND o.device_id = t.device_id AND r.state = 'queued'
     WHERE r.device_name IS NULL OR nm.device_id IS NOT NULL
), {_MESSAGE}, {_RECIPIENTS_AND_EVENTS}, locked AS (
    -- In device order, so that two batches serving the same phones never deadlock.
    SELECT s.device_id FROM device_sessions s
     WHERE s.device_id IN (SELECT device_id FROM chosen)
     ORDER BY s.device_id FOR NO KEY UPDATE
), touch AS (
    UPDATE device_sessions s SET routed_at = now() + x.k * interval '1 microsecond'
      FROM (SELECT c.device_id, max(c.n) AS k FROM chosen c JOIN locked USING (device_id)
             GROUP BY c.device_id) x
     WHERE s.device_id = x.device_id
    RETURNING 1
), wake AS (
    -- A pinned row as the caller asked; a routed one when its phone is held by another
    -- process (this one pushes its own after the commit), or the pool when it has none.
    SELECT pg_notify('smsnodes_hub', w.payload) FROM (
        SELECT DISTINCT CASE WHEN i.device_id IS NULL THEN 'pool:' || i.account_id
                             ELSE 'work:' || i.device_id END AS payload
          FROM input i LEFT JOIN cand c ON c.device_id = i.device_id
         WHERE i.state = 'queued'
           AND CASE WHEN i.routed THEN i.device_id IS NULL
                                    OR c.process_id IS DISTINCT FROM $25::uuid
                    ELSE i.notify END) w
)
SELECT (SELECT count(*) FROM wake) AS notified, (SELECT count(*) FROM touch) AS touched,
       (SELECT count(*) FROM used) AS counted,
       i.n, input.id, now() AS created_at, input.device_id, d.username AS device,
       input.dispatch_to, v.remaining, NOT v.day_ok AS over_day,
       NOT v.month_ok AS over_month,
       i.device_name IS NOT NULL
           AND EXISTS (SELECT 1 FROM checked c WHERE c.n = i.n)
           AND NOT EXISTS (SELECT 1 FROM known k WHERE k.n = i.n) AS unknown_device,
       CASE WHEN input.routed
            THEN EXISTS (SELECT 1 FROM live_sessions($18) s
                           JOIN devices o ON o.id = s.device_id
                          WHERE o.account_id = input.account_id)
            ELSE input.local_online OR EXISTS (SELECT 1 FROM live_sessions($18) s
                                                WHERE s.device_id = input.device_id)
       END AS online
  FROM {{answers}}
  LEFT JOIN input ON input.n = i.n
  LEFT JOIN verdict v ON v.n = i.n
  LEFT JOIN devices d ON d.id = input.device_id
 ORDER BY i.n
""", sends=Rows("i", _ROUTED_SENDS),  # noqa: S608 - fixed fragments
   answers=Rows("i", ((21, "text", "device_name"),)))


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to store, sealed already (so that a batch's transaction holds its
    connection only for the statement). See `new_message`."""

    device_id: int | None  # the phone (a phone's send); None for the account's
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
    segments: int = 1  # SMS per recipient: what the quota counts, times the recipients
    # The account's own send: routed, unless `device_name` pins it to that phone.
    account_auth: bool = False
    device_name: str | None = None
    # Connections of this process holding a free slot for it: (device id, connection id).
    offers: tuple[tuple[int, uuid.UUID], ...] = field(default=())
    process_id: uuid.UUID | None = None


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
    segments: int = 1,
    device_name: str | None = None,
    offers: tuple[tuple[int, uuid.UUID], ...] = (),
    process_id: uuid.UUID | None = None,
) -> NewMessage:
    """A new message: `scheduled` when it has a future time, `dispatched` to `dispatch_to`
    when the caller already holds a free slot on the device's live connection, `queued`
    otherwise (a routed one may still be written dispatched to one of its `offers`)."""
    if scheduled_at is not None:
        state = "scheduled"
    elif dispatch_to is not None:
        state = "dispatched"
    else:
        state = "queued"
    return NewMessage(
        principal.device_id, principal.credential_epoch, principal.account_id,
        principal.token_id, priority, state, principal.seal(text, TEXT_PURPOSE),
        [principal.seal(n, NUMBER_PURPOSE) for n in numbers],
        [principal.number_mac(n) for n in numbers],
        dispatch_to, scheduled_at, expires_at, notify, local_online, stale_seconds, sim,
        segments, principal.is_account, device_name, offers, process_id,
    )


async def insert_all(db: Executor, batch: Sequence[NewMessage]) -> list[Inserted]:
    """Store these messages in one statement; each answer says its id (None: the
    credentials changed since they were cached, or an unknown device), its phone and whether
    that phone (a routed send: any phone of the account) is online."""
    rcp_n: list[int] = []
    positions: list[int] = []
    for n, m in enumerate(batch, start=1):
        rcp_n += [n] * len(m.numbers)
        positions += range(1, len(m.numbers) + 1)
    args = [
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
    ]
    counts = [[len(m.numbers) * m.segments for m in batch], [m.segments for m in batch]]
    if not any(m.account_auth for m in batch):
        rows = await _INSERT.fetch(db, *args, *counts)
        return [Inserted(r["id"], r["created_at"] if r["id"] is not None else None,
                         r["online"], r["device_id"], None, r["dispatch_to"], False,
                         r["remaining"], _over(r))
                for r in rows]
    offers = [(n, device_id, conn) for n, m in enumerate(batch, start=1)
              for device_id, conn in m.offers]
    rows = await _INSERT_ROUTED.fetch(
        db, *args,
        [m.account_auth for m in batch], [m.device_name for m in batch],
        [o[0] for o in offers], [o[1] for o in offers], [o[2] for o in offers],
        next((m.process_id for m in batch if m.process_id is not None), None),
        *counts,
    )
    return [Inserted(r["id"], r["created_at"] if r["id"] is not None else None,
                     r["online"], r["device_id"], r["device"], r["dispatch_to"],
                     r["unknown_device"], r["remaining"], _over(r))
            for r in rows]


def _over(row: Any) -> str | None:
    """Which quota refused the row: the month's when both did (it resets later)."""
    if row["over_month"]:
        return "month"
    if row["over_day"]:
        return "day"
    return None


async def insert(db: Executor, message: NewMessage) -> Inserted:
    """One message alone (inside a caller's transaction: an idempotency key)."""
    return (await insert_all(db, [message]))[0]
