"""The hub: live device connections in this process, presence shared through PostgreSQL,
and what it does when the bus says another process changed something."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator

import asyncpg

from smsnodes_hub import bus
from smsnodes_hub.auth import logins
from smsnodes_hub.batching import NOT_COMMITTED, SetCommit
from smsnodes_hub.bus import Bus
from smsnodes_hub.config import Settings
from smsnodes_hub.db import FAILED, UNAVAILABLE
from smsnodes_hub.device import sessions
from smsnodes_hub.device.connection import DeviceConnection
from smsnodes_hub.device.keepalive import Keepalive
from smsnodes_hub.device.pacing import Pacer
from smsnodes_hub.device.protocol import CloseCode
from smsnodes_hub.device.sessions import PROCESS_STALE
from smsnodes_hub.messaging import idempotency, messages, withdrawal
from smsnodes_hub.messaging.lanes import Lanes

log = logging.getLogger(__name__)

PROCESS_HEARTBEAT = 5.0
ORPHAN_SWEEP = 5.0
CLOCK_TICK = 0.25  # scheduled messages go out, and expired ones are withdrawn, this promptly
IDEMPOTENCY_PRUNE_TICKS = 4 * 600  # forget expired idempotency keys every ten minutes
OFFLINE_SWEEP_TICKS = 4  # look for devices to announce offline every second
LOGIN_BATCH = 256  # sessions started in one statement at most


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


class Connections(dict[int, DeviceConnection]):
    """The live connections by device id, counting their changes, so that what is derived
    from them (the accounts whose keys are here, auth/keyring.py) is rebuilt when they
    changed and not at every look: ten thousand phones, looked at twice a second."""

    __slots__ = ("generation",)

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0

    def __setitem__(self, device_id: int, conn: DeviceConnection) -> None:
        super().__setitem__(device_id, conn)
        self.generation += 1

    def __delitem__(self, device_id: int) -> None:
        super().__delitem__(device_id)
        self.generation += 1


class Hub:
    """Owns this process's device connections and background duties. Only this object
    knows which phone is connected where; handlers ask it."""

    __slots__ = (
        "_detaching",
        "_stopped",
        "_tasks",
        "bus",
        "connections",
        "keepalive",
        "lanes",
        "logins",
        "logouts",
        "lookups",
        "other_processes",
        "pacers",
        "pool",
        "process_id",
        "settings",
    )

    def __init__(self, settings: Settings, pool: asyncpg.Pool, events: Bus) -> None:
        self.settings = settings
        self.pool = pool
        self.bus = events
        # Group commit for the hot path's writes; flushed on stop, before leaving.
        self.lanes = Lanes.open(pool)
        self.process_id = uuid.uuid4()
        # Sessions of sockets that log in together (a fleet back after a restart) start in
        # one statement and commit.
        self.logins: SetCommit[sessions.Registration, sessions.Registered | None] = SetCommit(
            pool, lambda conn, items: sessions.register_all(conn, self.process_id, items),
            name="logins", max_batch=LOGIN_BATCH, atomic=True)
        self.lookups: logins.SessionLookups = SetCommit(
            pool, logins.find_sessions, name="session-lookups", max_batch=LOGIN_BATCH,
            atomic=True)
        self.logouts: SetCommit[sessions.Closed, None] = SetCommit(
            pool, sessions.unregister_all, name="logouts", max_batch=LOGIN_BATCH, atomic=True)
        self.connections = Connections()
        self.keepalive = Keepalive(settings.device.heartbeat)
        # Other live hub processes on this database, as of the last heartbeat. Informative
        # only: NOTIFY is never skipped on it, since a process may have started since.
        self.other_processes = 0
        self.pacers: dict[int, Pacer] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        self._detaching: set[asyncio.Task[None]] = set()
        events.subscribe(bus.Work, self._on_work)
        events.subscribe(bus.PoolWork, lambda e: self._note_pool(e.account_id))
        events.subscribe(bus.Replaced, self._on_replaced)
        events.subscribe(bus.CredentialsChanged, lambda e: self.forget_device(e.device_id))
        events.subscribe(bus.TokenRevoked, self._on_token_revoked)
        events.subscribe(bus.Withdraw, self._on_withdraw)
        events.subscribe(bus.PaceChanged, lambda e: self.set_pace(e.device_id, e.per_minute))
        events.subscribe(bus.Disconnect, self._on_disconnect)
        events.on_resync(self._resync)

    # -- Lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        await sessions.register_process(self.pool, self.process_id)
        ack_period = min(1.0, self.settings.device.ack_timeout / 4)
        self._tasks = [
            asyncio.create_task(
                _every(PROCESS_HEARTBEAT, "the hub heartbeat", self._heartbeat),
                name="hub-heartbeat",
            ),
            asyncio.create_task(
                _every(ack_period, "ack timeouts", self._resend_overdue), name="hub-ack-timeouts"
            ),
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
        self.keepalive.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.lookups.close()
        await self.logins.close()
        await self.logouts.close()
        await self.lanes.close()
        with contextlib.suppress(*FAILED):
            await sessions.leave(self.pool, self.process_id)

    async def _heartbeat(self) -> None:
        await self.bus.ensure_listening()
        await self._beat()
        await self._sweep_orphans()

    async def _beat(self) -> None:
        beat = await sessions.beat(self.pool, self.process_id)
        self.other_processes = beat.other_processes
        if not beat.alive:
            # We were paused long enough to be declared dead: come back, with our sessions.
            await sessions.register_process(self.pool, self.process_id)
            for conn in list(self.connections.values()):
                await self._register_session(conn, model=None, app=None, sims=None)

    async def _sweep_orphans(self) -> None:
        grace = self.settings.device.ack_timeout
        for device_id in await messages.requeue_orphans(self.pool, grace, PROCESS_STALE):
            await self.announce_work(device_id)
        await messages.reroute_stranded(self.pool, PROCESS_STALE)
        await self._reconcile(grace)

    async def _reconcile(self, grace: float) -> None:
        """Every row dispatched to a live socket here is in its window, or queued again; and
        no socket here idles while its queue holds work."""
        conns = list(self.connections.values())
        if not conns:
            return
        stuck = await messages.reconcile(
            self.pool,
            [c.device_id for c in conns],
            [c.id for c in conns],
            grace,
            [m for c in conns for m in c.in_flight_ids()],
            [(c.device_id, c.principal.account_id) for c in conns if c.idle_with_room],
        )
        for device_id in stuck:
            log.warning("device %s: messages waited with nothing in flight for them; pushing",
                        device_id)
            await self.announce_work(device_id)

    async def _resend_overdue(self) -> None:
        now = time.monotonic()
        for conn in list(self.connections.values()):
            conn.resend_overdue(now)

    async def _clock_tick(self, ticks: Iterator[int]) -> None:
        """Expire what is due (first, so nothing expired is released), then release the
        scheduled messages whose time has come. Also the catch-up after downtime."""
        tick = next(ticks)
        if tick % IDEMPOTENCY_PRUNE_TICKS == 0:
            await idempotency.prune(self.pool)
        if tick % OFFLINE_SWEEP_TICKS == 0:
            await sessions.announce_offline(self.pool, self.settings.webhooks.offline_grace)
        delivery = self.settings.delivery
        await messages.advance_rounds(self.pool, delivery.retry_backoff,
                                      delivery.retry_backoff_max)
        for withdrawn in await withdrawal.expire_due(self.pool):
            if withdrawn.on_phone:
                await self.withdraw(withdrawn.device_id, withdrawn.message_id)
        for device_id, account_id in await messages.release_due(self.pool, PROCESS_STALE):
            if device_id is None:
                await self.announce_pool(account_id)
            else:
                await self.announce_work(device_id)

    # -- What other processes (or this one) ask for --------------------------------------------

    async def withdraw(self, device_id: int, message_id: int) -> None:
        """Send `cancel` for a message the phone holds, wherever its socket is."""
        conn = self.connections.get(device_id)
        if conn is not None:
            conn.withdraw(message_id)  # clears withdraw_pending once written
        else:
            await bus.publish(self.pool, bus.Withdraw(device_id, message_id))

    async def disconnect(self, device_id: int) -> bool:
        """Close the device's socket, wherever it is. True if this process held it; else the
        process that holds it (if any) is told through the bus."""
        conn = self.connections.get(device_id)
        if conn is not None:
            self._drop(conn, CloseCode.NORMAL, "disconnected by operator")
            return True
        await bus.publish(self.pool, bus.Disconnect(device_id))
        return False

    async def announce_work(self, device_id: int) -> None:
        if not self._note_work(device_id):
            await bus.publish(self.pool, bus.Work(device_id))

    async def announce_pool(self, account_id: int) -> None:
        """The account's pool holds work: its phones here claim now, those elsewhere when
        the bus tells their process."""
        self._note_pool(account_id)
        await bus.publish(self.pool, bus.PoolWork(account_id))

    def phones_of(self, account_id: int) -> list[DeviceConnection]:
        """The account's phones connected to this process (a scan: routed sends and pool
        wake-ups are rarer than connections are many)."""
        return [c for c in self.connections.values() if c.principal.account_id == account_id]

    def local_named(self, account_id: int, username: str) -> DeviceConnection | None:
        for conn in self.phones_of(account_id):
            if conn.principal.username == username:
                return conn
        return None

    def set_pace(self, device_id: int, per_minute: int | None) -> None:
        self.pacer(device_id).per_minute = per_minute
        self._note_work(device_id)

    def pacer(self, device_id: int) -> Pacer:
        pacer = self.pacers.get(device_id)
        if pacer is None:
            pacer = self.pacers[device_id] = Pacer()
        return pacer

    def forget_device(self, device_id: int) -> None:
        """The password changed or the device was removed: its sockets and tokens are void."""
        conn = self.connections.get(device_id)
        if conn is not None:
            self._drop(conn, CloseCode.INVALID_CREDENTIALS, "credentials changed")

    def _note_work(self, device_id: int) -> bool:
        conn = self.connections.get(device_id)
        if conn is None:
            return False
        conn.note_new_work()
        return True

    def _on_work(self, event: bus.Work) -> None:
        self._note_work(event.device_id)

    def _note_pool(self, account_id: int) -> None:
        for conn in self.phones_of(account_id):
            conn.note_new_work()

    def _on_replaced(self, event: bus.Replaced) -> None:
        conn = self.connections.get(event.device_id)
        if conn is not None and conn.id != event.connection_id:
            self._drop(conn, CloseCode.REPLACED, "replaced")

    def _on_token_revoked(self, event: bus.TokenRevoked) -> None:
        for conn in list(self.connections.values()):
            if conn.principal.token_id == event.token_id:
                self._drop(conn, CloseCode.INVALID_CREDENTIALS, "token revoked")

    def _on_withdraw(self, event: bus.Withdraw) -> None:
        if event.device_id in self.connections:
            self._spawn(self.withdraw(event.device_id, event.message_id))

    def _on_disconnect(self, event: bus.Disconnect) -> None:
        conn = self.connections.get(event.device_id)
        if conn is not None:
            self._drop(conn, CloseCode.NORMAL, "disconnected by operator")

    async def _resync(self) -> None:
        """The bus was down: a wake-up or a revocation may have been missed. Look again."""
        for conn in list(self.connections.values()):
            conn.note_new_work()
        conns = list(self.connections.values())
        void = await sessions.void_logins(self.pool, [
            sessions.Login(c.device_id, c.principal.credential_epoch, c.principal.token_id)
            for c in conns
        ])
        for conn in conns:
            if conn.device_id in void:
                self._drop(conn, CloseCode.INVALID_CREDENTIALS, "credentials changed")

    def _drop(self, conn: DeviceConnection, code: CloseCode, reason: str) -> None:
        if self.connections.get(conn.device_id) is conn:
            del self.connections[conn.device_id]
        conn.close(code, reason)

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
        withdrawn: list[int] | None = None
        try:
            withdrawn = await self._register_session(conn, model=model, app=app, sims=sims)
        finally:
            # Refused, or the database failed: no session, so not this process's phone.
            if withdrawn is None and self.connections.get(conn.device_id) is conn:
                del self.connections[conn.device_id]
        return withdrawn

    async def _register_session(
        self, conn: DeviceConnection, *, model: str | None, app: str | None, sims: int | None
    ) -> list[int] | None:
        registered = await self.logins.submit(sessions.Registration(
            conn.device_id, conn.id, conn.remote, conn.principal.credential_epoch,
            conn.principal.token_id, model, app, sims))
        if registered is None:
            return None
        self.pacer(conn.device_id).per_minute = registered.pace_per_minute
        return registered.withdrawn

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
        pacer = self.pacers.get(conn.device_id)
        if conn.device_id not in self.connections and pacer is not None and pacer.idle():
            # Nothing of the last minute to hold against a reconnect, and the next login
            # reads the pace from the database: a fleet that came and went leaves no trace.
            del self.pacers[conn.device_id]
        try:
            await self.logouts.submit(sessions.Closed(conn.device_id, conn.id))
        except NOT_COMMITTED as exc:
            # The orphan sweep requeues them once the database is back.
            log.warning("could not requeue in-flight messages of device %s: %s",
                        conn.device_id, exc)
            return
        self._note_work(conn.device_id)  # a newer connection of the device, if any

    def local(self, device_id: int) -> DeviceConnection | None:
        return self.connections.get(device_id)

    async def connected_devices(self, db: asyncpg.Pool | asyncpg.Connection) -> int:
        return await sessions.connected_devices(db, self.process_id, list(self.connections))
