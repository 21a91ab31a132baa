"""SQL of the `hub_processes` and `device_sessions` tables: which process is alive, which
device's socket it holds, and presence (online/offline) derived from both.

"Live" has one definition, `live_sessions(stale)` in sql/009_live_sessions.sql.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from smsnodes_hub.auth.accounts import Executor
from smsnodes_hub.messaging.messages import FAILOVER
from smsnodes_hub.set_statements import Rows, SetStatement

PROCESS_STALE = 15.0  # a process silent this long is dead, and so are its sessions

# Many logins in one statement (a fleet reconnecting after a restart arrives together):
# one row per item of the arrays, in their order. A device twice in one batch makes the
# upsert touch its row twice, which PostgreSQL refuses: the lane then runs them one by one.
_REGISTER_ALL = SetStatement("""
WITH i AS (
    SELECT * FROM {logins}
), gate AS (
    -- Locked: a racing announce_offline must not slip between this read of
    -- announced_online and the update below, or device.online would be lost. NO KEY
    -- UPDATE, so sends (foreign-key checks) are not held up meanwhile. In id order, so two
    -- batches never wait for each other's rows crosswise.
    -- A session token revoked since its lookup starts no session. One revoked after this
    -- statement's snapshot is deleted by a transaction whose NOTIFY reaches the hub after
    -- the socket was attached (Hub.attach), which closes it then.
    SELECT d.id, d.account_id, d.announced_online, d.pace_per_minute, i.connection_id,
           i.remote, i.model, i.app, i.sims, i.token_id, i.n
      FROM devices d JOIN i ON d.id = i.device_id AND d.credential_epoch = i.epoch
     WHERE i.token_id IS NULL OR EXISTS (SELECT 1 FROM tokens t WHERE t.id = i.token_id)
     ORDER BY d.id
       FOR NO KEY UPDATE OF d
), s AS (
    INSERT INTO device_sessions (device_id, connection_id, process_id, remote)
    SELECT id, connection_id, $1, remote FROM gate
    ON CONFLICT (device_id) DO UPDATE
       SET connection_id = EXCLUDED.connection_id, process_id = EXCLUDED.process_id,
           connected_at = now(), remote = EXCLUDED.remote, room_at = NULL
    -- An upsert that updated locked the row first, so its new version has xmax set; one
    -- that inserted has 0. This holds when a racing login committed the row after this
    -- statement's snapshot, which a separate read of device_sessions would miss.
    RETURNING device_id, connection_id, xmax <> 0 AS replaced
), d AS (
    UPDATE devices SET last_seen_at = now(), model = coalesce(gate.model, devices.model),
                       app_version = coalesce(gate.app, devices.app_version),
                       sims = coalesce(gate.sims, devices.sims), announced_online = true
      FROM gate WHERE devices.id = gate.id
), used AS (
    -- The session token the socket logged in with: its use is recorded here, in this
    -- commit, rather than by a write of its own at the lookup.
    UPDATE tokens SET last_used_at = now() FROM gate WHERE tokens.id = gate.token_id
), online AS (
    SELECT emit_webhook_event(account_id, 'device.online', id, NULL, NULL, NULL, NULL,
                              NULL, NULL)
      FROM gate WHERE NOT announced_online
), rq AS (
    UPDATE messages m SET state = 'queued', dispatched_to = NULL
      FROM gate WHERE m.device_id = gate.id AND m.state = 'dispatched'
       AND m.dispatched_to IS DISTINCT FROM gate.connection_id
), n AS (
    -- Whenever this replaced a session, whatever the cached count of other processes says
    -- (one may have just started). Only then: with no session row no other socket of the
    -- device is live anywhere, and a NOTIFY holds one lock for all notifying commits until
    -- theirs is flushed, which would make a fleet reconnecting after a restart log in one
    -- at a time. The payload is bus.Replaced.
    SELECT pg_notify('smsnodes_hub', 'replace:' || device_id || ':' || connection_id)
      FROM s WHERE replaced
), back AS (
    -- Routed messages a phone lost to failover and that no other phone took since: it
    -- takes them back (same id and attempt, as after any reconnect), with no cancel.
    UPDATE messages m SET device_id = c.device_id
      FROM pending_cancels c JOIN gate ON gate.id = c.device_id
     WHERE m.id = c.message_id AND m.device_id IS NULL AND m.state = 'queued'
    RETURNING m.id, c.device_id
), kept AS (
    DELETE FROM pending_cancels c USING back
     WHERE c.device_id = back.device_id AND c.message_id = back.id
), wd AS (
    -- Cancels and expiries the phone has not been told of yet (the flag is cleared once a
    -- cancel is written to its socket): a repeat is harmless, the phone ignores it. And the
    -- routed messages it lost to failover that another phone has now.
    SELECT m.device_id, m.id FROM messages m JOIN gate ON m.device_id = gate.id
     WHERE m.withdraw_pending
    UNION
    SELECT c.device_id, c.message_id FROM pending_cancels c JOIN gate ON gate.id = c.device_id
     WHERE NOT EXISTS (SELECT 1 FROM back WHERE back.id = c.message_id
                                             AND back.device_id = c.device_id)
)
SELECT gate.id IS NOT NULL AS registered, gate.pace_per_minute AS pace,
       ARRAY(SELECT wd.id FROM wd WHERE wd.device_id = i.device_id ORDER BY wd.id)
           AS withdrawn,
       -- Output, so that the CTEs that only SELECT (the NOTIFY, the webhook) run: one
       -- whose result nobody reads is never run.
       (SELECT count(*) FROM n) + (SELECT count(*) FROM online) AS told
  FROM i LEFT JOIN gate ON gate.n = i.n
 ORDER BY i.n
""", logins=Rows("i", ((2, "bigint", "device_id"), (3, "uuid", "connection_id"),
                      (4, "text", "remote"), (5, "text", "model"), (6, "text", "app"),
                      (7, "smallint", "sims"), (8, "bigint", "epoch"),
                      (9, "bigint", "token_id"))))

# Sockets closed: what each held in flight waits again, pinned messages for their phone,
# routed ones in the pool for another (failover, messages.FAILOVER); so do the routed ones
# only waiting for it, once it has no connection left (this one was its session). Many at
# once: a fleet that loses its network, or a hub that stops, closes them together.
_UNREGISTER_ALL = SetStatement(f"""
WITH i AS (
    SELECT * FROM {{closed}}
), s AS (
    DELETE FROM device_sessions ds USING i
     WHERE ds.device_id = i.device_id AND ds.connection_id = i.connection_id
    RETURNING ds.device_id
), d AS (
    UPDATE devices SET last_seen_at = now() FROM i WHERE devices.id = i.device_id
), gone AS (
    SELECT m.id, m.device_id, m.account_id, m.routed, m.state = 'dispatched' AS pushed
      FROM messages m JOIN i ON m.device_id = i.device_id
     WHERE (m.state = 'dispatched' AND m.dispatched_to = i.connection_id)
        OR (m.routed AND m.state = 'queued'
            AND EXISTS (SELECT 1 FROM s WHERE s.device_id = i.device_id))
       FOR UPDATE OF m
), {FAILOVER}
SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM pool) AS woken
""", closed=Rows("i", ((1, "bigint", "device_id"),  # noqa: S608 - fixed fragments
                      (2, "uuid", "connection_id"))))

# A device gone longer than the grace period is announced offline, once, by whichever
# process gets there first (the row lock decides). Gone: device_seen_at (sql/021) before
# the grace period, so last_seen_at that old and no session whose process beat since, and
# no live session (a process that beat within $2 seconds). Spelled out as one join, not
# that function per row: this runs every second, for every phone connected longer than
# the grace period.
ANNOUNCE_OFFLINE = """
WITH gone AS (
    UPDATE devices d SET announced_online = false
     WHERE announced_online AND last_seen_at < now() - make_interval(secs => $1)
       AND NOT EXISTS (SELECT 1 FROM device_sessions s JOIN hub_processes p
                                ON p.id = s.process_id
                        WHERE s.device_id = d.id
                          AND p.heartbeat_at > least(now() - make_interval(secs => $1),
                                                     now() - make_interval(secs => $2)))
    RETURNING id, account_id
)
SELECT emit_webhook_event(account_id, 'device.offline', id, NULL, NULL, NULL, NULL, NULL,
                          NULL) AS hooked
  FROM gone
"""

_BEAT = """
WITH me AS (
    UPDATE hub_processes SET heartbeat_at = now() WHERE id = $1 RETURNING 1
), dead AS (
    DELETE FROM hub_processes
     WHERE heartbeat_at < now() - make_interval(secs => $2 * 4) AND id <> $1
    RETURNING id, heartbeat_at
), seen AS (
    -- Their phones were last seen at their last beat (device_seen_at, sql/021); the
    -- sessions that said so go with the process.
    UPDATE devices d SET last_seen_at = greatest(d.last_seen_at, dead.heartbeat_at)
      FROM device_sessions s JOIN dead ON dead.id = s.process_id
     WHERE d.id = s.device_id
)
SELECT (SELECT count(*) FROM me) AS alive,
       (SELECT count(*) FROM hub_processes
         WHERE id <> $1 AND heartbeat_at > now() - make_interval(secs => $2)) AS others
"""

# Live sockets whose login is void: password changed, device removed or token revoked.
_VOID_LOGINS = """
SELECT ARRAY(
SELECT c.device FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS c(device, epoch, token)
 WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = c.device AND d.credential_epoch = c.epoch)
    OR (c.token IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tokens t WHERE t.id = c.token)))
"""


@dataclass(frozen=True, slots=True)
class Registered:
    pace_per_minute: int | None
    withdrawn: list[int]  # cancelled or expired while the phone was away: tell it


@dataclass(frozen=True, slots=True)
class Heartbeat:
    alive: bool  # False: this process had been declared dead and must register again
    other_processes: int


@dataclass(frozen=True, slots=True)
class Login:
    """What a live socket logged in with, to check it is still valid."""

    device_id: int
    credential_epoch: int
    token_id: int | None


async def register_process(db: Executor, process_id: uuid.UUID) -> None:
    await db.execute(
        """INSERT INTO hub_processes (id, hostname, pid) VALUES ($1, $2, $3)
           ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()""",
        process_id, socket.gethostname(), os.getpid(),
    )


async def leave(db: Executor, process_id: uuid.UUID) -> None:
    """This process stops: its sessions go with it (ON DELETE CASCADE), their phones last
    seen now."""
    await db.execute(
        """WITH seen AS (
               UPDATE devices d SET last_seen_at = now() FROM device_sessions s
                WHERE s.process_id = $1 AND d.id = s.device_id
           )
           DELETE FROM hub_processes WHERE id = $1""",
        process_id,
    )


async def beat(db: Executor, process_id: uuid.UUID) -> Heartbeat:
    """Prove this process alive (and so every phone it holds seen: device_seen_at), and
    forget long-dead processes."""
    row = await db.fetchrow(_BEAT, process_id, PROCESS_STALE)
    assert row is not None
    return Heartbeat(bool(row["alive"]), row["others"])


@dataclass(frozen=True, slots=True)
class Registration:
    """One socket's login, to make it its device's session (register_all)."""

    device_id: int
    connection_id: uuid.UUID
    remote: str | None
    credential_epoch: int
    token_id: int | None = None  # the session token it logged in with, marked used
    model: str | None = None
    app: str | None = None
    sims: int | None = None


async def register_all(
    db: Executor, process_id: uuid.UUID, items: Sequence[Registration]
) -> list[Registered | None]:
    """Make each connection its device's one session, requeue what another connection of
    it held, announce `device.online`: one statement for them all. None for an item whose
    credentials changed meanwhile."""
    rows = await _REGISTER_ALL.fetch(
        db, process_id,
        [x.device_id for x in items], [x.connection_id for x in items],
        [x.remote for x in items], [x.model for x in items], [x.app for x in items],
        [x.sims for x in items], [x.credential_epoch for x in items],
        [x.token_id for x in items],
    )
    return [Registered(row["pace"], list(row["withdrawn"])) if row["registered"] else None
            for row in rows]


async def register(db: Executor, process_id: uuid.UUID, item: Registration) -> Registered | None:
    """register_all for one connection."""
    return (await register_all(db, process_id, [item]))[0]


@dataclass(frozen=True, slots=True)
class Closed:
    """A socket that closed, to end its session (unregister_all)."""

    device_id: int
    connection_id: uuid.UUID


async def unregister_all(db: Executor, items: Sequence[Closed]) -> list[None]:
    """The sockets closed: end their sessions and put what they held back in the queue, or
    in the pool for another phone (failover): one statement for them all."""
    ordered = sorted(items, key=lambda x: x.device_id)  # rows locked in one order
    await _UNREGISTER_ALL.fetch(db, [x.device_id for x in ordered],
                                [x.connection_id for x in ordered])
    return [None] * len(items)


async def set_room(db: Executor, device_id: int, connection_id: uuid.UUID,
                   seconds: float) -> None:
    """The phone's pacing has no room for `seconds`: routing passes it over until then."""
    await db.execute(
        """UPDATE device_sessions SET room_at = now() + make_interval(secs => $3)
            WHERE device_id = $1 AND connection_id = $2""",
        device_id, connection_id, seconds,
    )


async def announce_offline(db: Executor, grace_seconds: float) -> None:
    await db.fetch(ANNOUNCE_OFFLINE, grace_seconds, PROCESS_STALE)


async def void_logins(db: Executor, logins: list[Login]) -> set[int]:
    """The devices among `logins` whose password, removal or token revocation voids them."""
    if not logins:
        return set()
    return set(await db.fetchval(
        _VOID_LOGINS,
        [x.device_id for x in logins],
        [x.credential_epoch for x in logins],
        [x.token_id for x in logins],
    ))


async def connected_devices(
    db: asyncpg.Pool | asyncpg.Connection, process_id: uuid.UUID, here: list[int]
) -> int:
    """The phones connected to any live process: those `here` (this process's sockets, which
    it knows without asking), plus the live sessions of the others. This process's own rows
    are not asked for: after a database outage longer than PROCESS_STALE its heartbeat is
    stale until the next beat, yet its phones never left."""
    others = await db.fetchval(
        """SELECT count(*) FROM live_sessions($1)
            WHERE process_id <> $2 AND NOT device_id = ANY($3::bigint[])""",
        PROCESS_STALE, process_id, here,
    )
    return len(here) + int(others)
