"""SQL of the `hub_processes` and `device_sessions` tables: which process is alive, which
device's socket it holds, and presence (online/offline) derived from both.

"Live" has one definition, `live_sessions(stale)` in sql/009_live_sessions.sql.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

import asyncpg

from smsnodes_hub.auth.accounts import Executor
from smsnodes_hub.messaging.messages import FAILOVER

PROCESS_STALE = 15.0  # a process silent this long is dead, and so are its sessions

_REGISTER = """
WITH gate AS (
    -- Locked: a racing announce_offline must not slip between this read of
    -- announced_online and the update below, or device.online would be lost. NO KEY
    -- UPDATE, so sends (foreign-key checks) are not held up meanwhile.
    SELECT id, account_id, announced_online FROM devices
     WHERE id = $1 AND credential_epoch = $8
       FOR NO KEY UPDATE
), s AS (
    INSERT INTO device_sessions (device_id, connection_id, process_id, remote)
    SELECT $1, $2, $3, $4 FROM gate
    ON CONFLICT (device_id) DO UPDATE
       SET connection_id = EXCLUDED.connection_id, process_id = EXCLUDED.process_id,
           connected_at = now(), remote = EXCLUDED.remote, room_at = NULL
    -- An upsert that updated locked the row first, so its new version has xmax set; one
    -- that inserted has 0. This holds when a racing login committed the row after this
    -- statement's snapshot, which a separate read of device_sessions would miss.
    RETURNING xmax <> 0 AS replaced
), d AS (
    UPDATE devices SET last_seen_at = now(), model = coalesce($5, model),
                       app_version = coalesce($6, app_version), sims = coalesce($7, sims),
                       announced_online = true
     WHERE id IN (SELECT id FROM gate)
    RETURNING 1
), online AS (
    SELECT emit_webhook_event(gate.account_id, 'device.online', $1, NULL, NULL, NULL, NULL,
                              NULL, NULL)
      FROM gate WHERE NOT gate.announced_online AND EXISTS (SELECT 1 FROM d)
), rq AS (
    UPDATE messages SET state = 'queued', dispatched_to = NULL
     WHERE device_id IN (SELECT id FROM gate) AND state = 'dispatched'
       AND dispatched_to IS DISTINCT FROM $2
    RETURNING 1
), n AS (
    -- Whenever this replaced a session, whatever the cached count of other processes says
    -- (one may have just started). Only then: with no session row no other socket of the
    -- device is live anywhere, and a NOTIFY holds one lock for all notifying commits until
    -- theirs is flushed, which would make a fleet reconnecting after a restart log in one
    -- at a time. The payload is bus.Replaced.
    SELECT pg_notify('smsnodes_hub', 'replace:' || $1 || ':' || $2) FROM s WHERE s.replaced
), back AS (
    -- Routed messages this phone lost to failover and that no other phone took since: it
    -- takes them back (same id and attempt, as after any reconnect), with no cancel.
    UPDATE messages SET device_id = $1
     WHERE id IN (SELECT message_id FROM pending_cancels
                   WHERE device_id IN (SELECT id FROM gate))
       AND device_id IS NULL AND state = 'queued'
    RETURNING id
), kept AS (
    DELETE FROM pending_cancels WHERE device_id = $1 AND message_id IN (SELECT id FROM back)
), wd AS (
    -- Cancels and expiries the phone has not been told of yet (the flag is cleared once a
    -- cancel is written to its socket): a repeat is harmless, the phone ignores it. And the
    -- routed messages it lost to failover that another phone has now.
    SELECT id FROM messages
     WHERE device_id IN (SELECT id FROM gate) AND withdraw_pending
    UNION
    SELECT message_id FROM pending_cancels
     WHERE device_id IN (SELECT id FROM gate) AND message_id NOT IN (SELECT id FROM back)
)
-- Every CTE is named here: one that only SELECTs (the NOTIFY, the webhook) runs only when
-- something reads it.
SELECT (SELECT count(*) FROM s) AS registered, (SELECT count(*) FROM rq) AS requeued,
       (SELECT count(*) FROM n) AS notified, (SELECT count(*) FROM online) AS hooked,
       (SELECT pace_per_minute FROM devices WHERE id = $1) AS pace,
       ARRAY(SELECT id FROM wd ORDER BY id) AS withdrawn
"""

# The socket closed: what it held in flight waits again, pinned messages for their phone,
# routed ones in the pool for another (failover, messages.FAILOVER); so do the routed ones
# only waiting for it, once it has no connection left (this one was its session).
_UNREGISTER = f"""
WITH s AS (
    DELETE FROM device_sessions WHERE device_id = $1 AND connection_id = $2 RETURNING 1
), d AS (
    UPDATE devices SET last_seen_at = now() WHERE id = $1
), gone AS (
    SELECT id, device_id, account_id, routed, state = 'dispatched' AS pushed FROM messages
     WHERE device_id = $1
       AND ((state = 'dispatched' AND dispatched_to = $2)
            OR (routed AND state = 'queued' AND EXISTS (SELECT 1 FROM s)))
       FOR UPDATE
), {FAILOVER}
SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM pool) AS woken
"""  # noqa: S608 - fixed fragments

# A device gone longer than the grace period is announced offline, once, by whichever
# process gets there first (the row lock decides).
ANNOUNCE_OFFLINE = """
WITH gone AS (
    UPDATE devices d SET announced_online = false
     WHERE announced_online AND last_seen_at < now() - make_interval(secs => $1)
       AND NOT EXISTS (SELECT 1 FROM live_sessions($2) s WHERE s.device_id = d.id)
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
), seen AS (
    UPDATE devices SET last_seen_at = now() WHERE id = ANY($3::bigint[])
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
    """This process stops: its sessions go with it (ON DELETE CASCADE)."""
    await db.execute("DELETE FROM hub_processes WHERE id = $1", process_id)


async def beat(db: Executor, process_id: uuid.UUID, device_ids: list[int]) -> Heartbeat:
    """Prove this process alive, forget long-dead ones, and mark its devices seen."""
    row = await db.fetchrow(_BEAT, process_id, PROCESS_STALE, device_ids)
    assert row is not None
    return Heartbeat(bool(row["alive"]), row["others"])


async def register(
    db: Executor, process_id: uuid.UUID, device_id: int, connection_id: uuid.UUID,
    remote: str | None, credential_epoch: int, *, model: str | None, app: str | None,
    sims: int | None,
) -> Registered | None:
    """Make this connection the device's one session, requeue what another connection of
    it held, announce `device.online`. None if the credentials changed meanwhile."""
    row = await db.fetchrow(_REGISTER, device_id, connection_id, process_id, remote, model,
                            app, sims, credential_epoch)
    assert row is not None
    if not row["registered"]:
        return None
    return Registered(row["pace"], list(row["withdrawn"]))


async def unregister(db: Executor, device_id: int, connection_id: uuid.UUID) -> None:
    """The socket closed: end its session and put what it held back in the queue, or in
    the pool for another phone (failover)."""
    await db.fetchrow(_UNREGISTER, device_id, connection_id)


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
