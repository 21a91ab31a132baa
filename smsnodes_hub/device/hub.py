"""The hub: live device connections in this process, presence shared through PostgreSQL, and
the bus (LISTEN/NOTIFY) that lets several hub processes act as one."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator

import asyncpg

from smsnodes_hub.config import Settings
from smsnodes_hub.db import UNAVAILABLE
from smsnodes_hub.device.connection import DeviceConnection
from smsnodes_hub.device.pacing import Pacer
from smsnodes_hub.device.protocol import CloseCode
from smsnodes_hub.messaging import idempotency, messages

log = logging.getLogger(__name__)

CHANNEL = "smsnodes_hub"
PROCESS_HEARTBEAT = 5.0
PROCESS_STALE = 15.0  # a process silent this long is dead, and so are its sessions
ORPHAN_SWEEP = 5.0
CLOCK_TICK = 0.25  # scheduled messages go out, and expired ones are withdrawn, this promptly
IDEMPOTENCY_PRUNE_TICKS = 4 * 600  # forget expired idempotency keys every ten minutes
OFFLINE_SWEEP_TICKS = 4  # look for devices to announce offline every second

_REGISTER = """
WITH gate AS (
    -- Locked: a racing _ANNOUNCE_OFFLINE must not slip between this read of
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
           connected_at = now(), remote = EXCLUDED.remote
    RETURNING 1
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
    -- Always: a cached count of other processes can be stale (one may have just started).
    SELECT pg_notify('smsnodes_hub', 'replace:' || $1 || ':' || $2) FROM gate
), wd AS (
    -- Cancels and expiries the phone has not been told of yet (the flag is cleared once a
    -- cancel is written to its socket): a repeat is harmless, the phone ignores it.
    SELECT id FROM messages
     WHERE device_id IN (SELECT id FROM gate) AND withdraw_pending
)
SELECT (SELECT count(*) FROM s) AS registered, (SELECT count(*) FROM rq) AS requeued,
       (SELECT count(*) FROM n) AS notified, (SELECT count(*) FROM online) AS hooked,
       (SELECT pace_per_minute FROM devices WHERE id = $1) AS pace,
       ARRAY(SELECT id FROM wd ORDER BY id) AS withdrawn
"""

_UNREGISTER = """
WITH s AS (
    DELETE FROM device_sessions WHERE device_id = $1 AND connection_id = $2
), d AS (
    UPDATE devices SET last_seen_at = now() WHERE id = $1
)
UPDATE messages SET state = 'queued', dispatched_to = NULL
 WHERE device_id = $1 AND state = 'dispatched' AND dispatched_to = $2
"""

# A device gone longer than the grace period is announced offline, once, by whichever
# process gets there first (the row lock decides).
_ANNOUNCE_OFFLINE = """
WITH gone AS (
    UPDATE devices d SET announced_online = false
     WHERE announced_online AND last_seen_at < now() - make_interval(secs => $1)
       AND NOT EXISTS (
           SELECT 1 FROM device_sessions s JOIN hub_processes p ON p.id = s.process_id
            WHERE s.device_id = d.id AND p.heartbeat_at > now() - make_interval(secs => $2))
    RETURNING id, account_id
)
SELECT emit_webhook_event(account_id, 'device.offline', id, NULL, NULL, NULL, NULL, NULL,
                          NULL) AS hooked
  FROM gone
"""

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

# Live sockets whose login is void: password changed, device removed or token revoked.
_VOID_LOGINS = """
SELECT c.device FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS c(device, epoch, token)
 WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = c.device AND d.credential_epoch = c.epoch)
    OR (c.token IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tokens t WHERE t.id = c.token))
"""

CONNECTED_SQL = """
SELECT count(*) FROM device_sessions s JOIN hub_processes p ON p.id = s.process_id
 WHERE p.heartbeat_at > now() - make_interval(secs => $1)
"""


async def _every(
    period: float, what: str, step: Callable[..., Awaitable[None]], *args: object
) -> None:
    """Run `step` forever, `period` seconds apart; a failure is logged, never fatal."""
    while True:
        try:
            await step(*args)
        except asyncio.CancelledError:
            raise
        except UNAVAILABLE as exc:
            log.warning("database unavailable for %s: %s", what, exc)
        except Exception:
            log.exception("%s failed", what)
        await asyncio.sleep(period)


class Hub:
    """Owns this process's device connections and background duties. Only this object
    knows which phone is connected where; handlers ask it."""

    __slots__ = (
        "_detaching",
        "_dsn",
        "_listener",
        "_stopped",
        "_tasks",
        "connections",
        "invalidation_hooks",
        "other_processes",
        "pacers",
        "pool",
        "process_id",
        "settings",
    )

    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self.pool = pool
        self.process_id = uuid.uuid4()
        self.connections: dict[int, DeviceConnection] = {}
        # Other live hub processes on this database, as of the last heartbeat. Informative
        # only: NOTIFY is never skipped on it, since a process may have started since.
        self.other_processes = 0
        self.pacers: dict[int, Pacer] = {}
        # Called with ("credentials", device_id) or ("token", token_id) when another process
        # (or the CLI) changed credentials: caches of verified logins drop their entries.
        # ("all", 0) after the bus was down: what it missed is unknown, so drop everything.
        self.invalidation_hooks: list[Callable[[str, int], None]] = []
        self._listener: asyncpg.Connection | None = None
        self._dsn = ""
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        self._detaching: set[asyncio.Task[None]] = set()

    # -- Lifecycle ----------------------------------------------------------------------------

    async def start(self, dsn: str) -> None:
        self._dsn = dsn
        await self._register_process()
        self._tasks = [
            asyncio.create_task(
                _every(PROCESS_HEARTBEAT, "the hub heartbeat", self._heartbeat, dsn),
                name="hub-heartbeat",
            ),
            asyncio.create_task(self._ack_timeout_loop(), name="hub-ack-timeouts"),
            asyncio.create_task(
                _every(CLOCK_TICK, "scheduled messages", self._clock_tick, itertools.count(1)),
                name="hub-clock",
            ),
        ]

    async def stop(self) -> None:
        """Close every socket with 1001, requeue what was in flight, leave the process table."""
        if self._stopped:
            return
        self._stopped = True
        for conn in list(self.connections.values()):
            conn.close(CloseCode.GOING_AWAY, "hub shutting down")
        closing = [c.wait_closed() for c in self.connections.values()]
        if closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*closing), 5)
        if self._detaching:
            await asyncio.wait(list(self._detaching), timeout=5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
        with contextlib.suppress(*UNAVAILABLE, asyncpg.PostgresError):
            await self.pool.execute("DELETE FROM hub_processes WHERE id = $1", self.process_id)

    async def _register_process(self) -> None:
        await self.pool.execute(
            """INSERT INTO hub_processes (id, hostname, pid) VALUES ($1, $2, $3)
               ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()""",
            self.process_id,
            socket.gethostname(),
            os.getpid(),
        )

    async def _heartbeat(self, dsn: str) -> None:
        await self._listen(dsn)
        await self._beat()
        await self._sweep_orphans()

    async def _beat(self) -> None:
        row = await self.pool.fetchrow(
            """WITH me AS (
                   UPDATE hub_processes SET heartbeat_at = now() WHERE id = $1 RETURNING 1
               ), dead AS (
                   DELETE FROM hub_processes
                    WHERE heartbeat_at < now() - make_interval(secs => $2 * 4) AND id <> $1
               ), seen AS (
                   UPDATE devices SET last_seen_at = now() WHERE id = ANY($3::bigint[])
               )
               SELECT (SELECT count(*) FROM me) AS alive,
                      (SELECT count(*) FROM hub_processes
                        WHERE id <> $1
                          AND heartbeat_at > now() - make_interval(secs => $2)) AS others""",
            self.process_id,
            PROCESS_STALE,
            list(self.connections),
        )
        assert row is not None
        self.other_processes = row["others"]
        if not row["alive"]:
            # We were paused long enough to be declared dead: come back, with our sessions.
            await self._register_process()
            for conn in list(self.connections.values()):
                await self._register_session(conn, model=None, app=None, sims=None)

    async def _sweep_orphans(self) -> None:
        grace = self.settings.device.ack_timeout
        for device_id in await messages.requeue_orphans(self.pool, grace, PROCESS_STALE):
            await self.announce_work(device_id)
        await self._reconcile(grace)

    async def _reconcile(self, grace: float) -> None:
        """Every row dispatched to a live socket here is in its window, or queued again; and
        no socket here idles while its queue holds work."""
        conns = list(self.connections.values())
        if not conns:
            return
        rows = await self.pool.fetch(
            _RECONCILE,
            [c.device_id for c in conns],
            [c.id for c in conns],
            grace,
            [m for c in conns for m in c.in_flight_ids()],
            [c.device_id for c in conns if c.idle_with_room],
        )
        for device_id in {r["device_id"] for r in rows}:
            log.warning("device %s: messages waited with nothing in flight for them; pushing",
                        device_id)
            await self.announce_work(device_id)

    async def _clock_tick(self, ticks: Iterator[int]) -> None:
        """Expire what is due (first, so nothing expired is released), then release the
        scheduled messages whose time has come. Also the catch-up after downtime."""
        tick = next(ticks)
        if tick % IDEMPOTENCY_PRUNE_TICKS == 0:
            await idempotency.prune(self.pool)
        if tick % OFFLINE_SWEEP_TICKS == 0:
            await self.pool.fetch(
                _ANNOUNCE_OFFLINE, self.settings.webhooks.offline_grace, PROCESS_STALE
            )
        delivery = self.settings.delivery
        await messages.advance_rounds(self.pool, delivery.retry_backoff,
                                      delivery.retry_backoff_max)
        for withdrawn in await messages.expire_due(self.pool):
            if withdrawn.on_phone:
                await self.withdraw(withdrawn.device_id, withdrawn.message_id)
        for device_id in await messages.release_due(self.pool):
            await self.announce_work(device_id)

    async def withdraw(self, device_id: int, message_id: int) -> None:
        """Send `cancel` for a message the phone holds, wherever its socket is."""
        conn = self.connections.get(device_id)
        if conn is not None:
            conn.withdraw(message_id)  # clears withdraw_pending once written
        else:
            await self.pool.execute(
                "SELECT pg_notify($1, $2)", CHANNEL, f"cancel:{device_id}:{message_id}"
            )

    async def disconnect(self, device_id: int) -> bool:
        """Close the device's socket, wherever it is. True if this process held it; else the
        process that holds it (if any) is told through the bus."""
        conn = self.connections.get(device_id)
        if conn is not None:
            self._drop(conn, CloseCode.NORMAL, "disconnected by operator")
            return True
        await self.pool.execute("SELECT pg_notify($1, $2)", CHANNEL, f"disconnect:{device_id}")
        return False

    def set_pace(self, device_id: int, per_minute: int | None) -> None:
        self.pacer(device_id).per_minute = per_minute
        conn = self.connections.get(device_id)
        if conn is not None:
            conn.note_new_work()

    def pacer(self, device_id: int) -> Pacer:
        pacer = self.pacers.get(device_id)
        if pacer is None:
            pacer = self.pacers[device_id] = Pacer()
        return pacer

    async def _ack_timeout_loop(self) -> None:
        period = min(1.0, self.settings.device.ack_timeout / 4)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for conn in list(self.connections.values()):
                conn.resend_overdue(now)

    # -- The bus ------------------------------------------------------------------------------

    async def _listen(self, dsn: str) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        listener = await asyncpg.connect(dsn, timeout=5)
        await listener.add_listener(CHANNEL, self._on_notify)
        listener.add_termination_listener(self._on_listener_lost)
        self._listener = listener
        # Anything announced while we were not listening is found by asking again: the
        # queue for work, and the database for revocations (caches would honour a revoked
        # token or an old password for their whole lifetime otherwise).
        self._invalidate("all", 0)
        for conn in list(self.connections.values()):
            conn.note_new_work()
        await self._drop_void_logins()

    def _on_listener_lost(self, _conn: object) -> None:
        if not self._stopped:
            self._spawn(self._relisten())

    async def _relisten(self) -> None:
        """Listen again at once rather than at the next heartbeat: revocations wait on it."""
        for _ in range(int(PROCESS_HEARTBEAT)):
            try:
                await self._listen(self._dsn)
                return
            except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
                log.warning("could not listen on the bus again: %s", exc)
                await asyncio.sleep(1)
        # Past that the heartbeat keeps trying.

    async def _drop_void_logins(self) -> None:
        conns = list(self.connections.values())
        if not conns:
            return
        void = set(await self.pool.fetchval(
            "SELECT ARRAY(" + _VOID_LOGINS + ")",
            [c.device_id for c in conns],
            [c.principal.credential_epoch for c in conns],
            [c.principal.token_id for c in conns],
        ))
        for conn in conns:
            if conn.device_id in void:
                self._drop(conn, CloseCode.INVALID_CREDENTIALS, "credentials changed")

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        kind, _, rest = payload.partition(":")
        if kind == "work":
            conn = self.connections.get(int(rest))
            if conn is not None:
                conn.note_new_work()
        elif kind == "replace":
            device, _, connection_id = rest.partition(":")
            conn = self.connections.get(int(device))
            if conn is not None and str(conn.id) != connection_id:
                self._drop(conn, CloseCode.REPLACED, "replaced")
        elif kind == "credentials":
            self._invalidate("credentials", int(rest))
            self.forget_device(int(rest))
        elif kind == "cancel":
            device, _, message = rest.partition(":")
            if int(device) in self.connections:
                self._spawn(self.withdraw(int(device), int(message)))
        elif kind == "pace":
            device, _, per_minute = rest.partition(":")
            self.set_pace(int(device), int(per_minute) or None)
        elif kind == "disconnect":
            conn = self.connections.get(int(rest))
            if conn is not None:
                self._drop(conn, CloseCode.NORMAL, "disconnected by operator")
        elif kind == "token":
            self._invalidate("token", int(rest))
            for conn in list(self.connections.values()):
                if conn.principal.token_id == int(rest):
                    self._drop(conn, CloseCode.INVALID_CREDENTIALS, "token revoked")

    def _invalidate(self, kind: str, ident: int) -> None:
        for hook in self.invalidation_hooks:
            hook(kind, ident)

    def forget_device(self, device_id: int) -> None:
        """The password changed or the device was removed: its sockets and tokens are void."""
        conn = self.connections.get(device_id)
        if conn is not None:
            self._drop(conn, CloseCode.INVALID_CREDENTIALS, "credentials changed")

    def _drop(self, conn: DeviceConnection, code: int, reason: str) -> None:
        if self.connections.get(conn.device_id) is conn:
            del self.connections[conn.device_id]
        conn.close(code, reason)

    async def announce_work(self, device_id: int) -> None:
        conn = self.connections.get(device_id)
        if conn is not None:
            conn.note_new_work()
        else:
            await self.pool.execute("SELECT pg_notify($1, $2)", CHANNEL, f"work:{device_id}")

    # -- Sessions -----------------------------------------------------------------------------

    async def attach(
        self, conn: DeviceConnection, *, model: str | None, app: str | None, sims: int | None
    ) -> list[int] | None:
        """Make `conn` the device's one live connection, here and across processes. None if
        the credentials it logged in with were changed meanwhile; else the ids of messages
        cancelled or expired while the phone was away, to tell it about."""
        older = self.connections.get(conn.device_id)
        self.connections[conn.device_id] = conn
        if older is not None:
            older.close(CloseCode.REPLACED, "replaced")
        withdrawn = await self._register_session(conn, model=model, app=app, sims=sims)
        if withdrawn is None and self.connections.get(conn.device_id) is conn:
            del self.connections[conn.device_id]
        return withdrawn

    async def _register_session(
        self, conn: DeviceConnection, *, model: str | None, app: str | None, sims: int | None
    ) -> list[int] | None:
        row = await self.pool.fetchrow(
            _REGISTER,
            conn.device_id,
            conn.id,
            self.process_id,
            conn.remote,
            model,
            app,
            sims,
            conn.principal.credential_epoch,
        )
        assert row is not None
        self.pacer(conn.device_id).per_minute = row["pace"]
        return list(row["withdrawn"]) if row["registered"] else None

    def detach_soon(self, conn: DeviceConnection) -> asyncio.Task[None]:
        return self._spawn(self.detach(conn))

    def _spawn(self, work: Coroutine[object, object, None]) -> asyncio.Task[None]:
        """A task the hub keeps a reference to and waits for on shutdown."""
        task = asyncio.create_task(work)
        self._detaching.add(task)
        task.add_done_callback(self._detaching.discard)
        return task

    async def detach(self, conn: DeviceConnection) -> None:
        """The socket closed: forget it and put its in-flight messages back in the queue."""
        if self.connections.get(conn.device_id) is conn:
            del self.connections[conn.device_id]
        try:
            await self.pool.execute(_UNREGISTER, conn.device_id, conn.id)
        except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
            # The orphan sweep requeues them once the database is back.
            log.warning("could not requeue in-flight messages of device %s: %s",
                        conn.device_id, exc)
            return
        newer = self.connections.get(conn.device_id)
        if newer is not None:
            newer.note_new_work()

    def local(self, device_id: int) -> DeviceConnection | None:
        return self.connections.get(device_id)

    async def connected_devices(self, db: asyncpg.Pool | asyncpg.Connection) -> int:
        return int(await db.fetchval(CONNECTED_SQL, PROCESS_STALE))
