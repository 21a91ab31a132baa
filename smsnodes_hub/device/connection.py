"""One authenticated phone connection: its single writer task, keepalive, and the window of
`sms` frames in flight."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass

import asyncpg
from aiohttp import WSMsgType, web

from smsnodes_hub.auth.accounts import Principal
from smsnodes_hub.config import DeliverySettings
from smsnodes_hub.device.pacing import Pacer
from smsnodes_hub.device.protocol import CloseCode, sms_frame
from smsnodes_hub.device.protocol import cancel as protocol_cancel
from smsnodes_hub.messaging import messages

log = logging.getLogger(__name__)

CLAIM_RETRY = 1.0  # seconds before claiming again after the database failed us
# A slow reader gets this long to take a 1008 close frame before TCP is dropped under it.
SLOW_CLOSE_GRACE = 1.0

# What the writer sends: a text frame, ("pong", payload), ("ping",), ("cancel", message id)
# or ("close", code, reason).
Outgoing = bytes | tuple[str, int, str] | tuple[str, bytes] | tuple[str] | tuple[str, int]


@dataclass(slots=True)
class InFlight:
    attempt: int
    frame: bytes
    deadline: float


class DeviceConnection:
    """Nothing but the writer task writes to the socket: everything else enqueues frames.
    A phone that stops reading fills its bounded queue (or leaves a frame unwritten for a
    heartbeat) and is disconnected; the hub never waits on it."""

    __slots__ = (
        "_cancels_written",
        "_closing",
        "_early_cancels",
        "_flush_task",
        "_keepalive",
        "_outbox",
        "_pump_lock",
        "_pump_task",
        "_queue_may_hold_work",
        "_ready",
        "_recent",
        "_room_timer",
        "_slow",
        "_work_seq",
        "_writer",
        "ack_timeout",
        "claims",
        "closed",
        "connected_at",
        "delivery",
        "heartbeat",
        "id",
        "in_flight",
        "last_pong",
        "pacer",
        "pool",
        "principal",
        "remote",
        "reserved",
        "window",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        principal: Principal,
        pool: asyncpg.Pool,
        *,
        window: int,
        ack_timeout: float,
        heartbeat: float,
        outbox_size: int,
        remote: str,
        pacer: Pacer | None = None,
        delivery: DeliverySettings | None = None,
    ) -> None:
        self.id = uuid.uuid4()
        self.ws = ws
        self.principal = principal
        self.pool = pool
        self.window = window
        self.ack_timeout = ack_timeout
        self.heartbeat = heartbeat
        self.remote = remote
        self.connected_at = time.time()
        self.in_flight: dict[int, InFlight] = {}
        self.reserved = 0  # slots promised to send requests whose insert is under way
        self.closed = False
        self.last_pong = time.monotonic()
        self.claims = 0  # claim round trips made, for metrics and tests
        self._closing = False
        # Until auth_ok is queued nothing else may be: no sms, no cancel (see set_ready).
        self._ready = False
        self._early_cancels: list[int] = []
        self._slow = False
        self._outbox: asyncio.Queue[Outgoing] = asyncio.Queue(outbox_size)
        self._pump_task: asyncio.Task[None] | None = None
        self._pump_lock = asyncio.Lock()
        self._queue_may_hold_work = True  # until a claim comes back short
        # Bumped by every hint of new work: a claim that started before the hint may not
        # see that work, so its short answer must not clear the flag the hint set.
        self._work_seq = 0
        self._recent: deque[int] = deque(maxlen=256)  # ids pushed lately: sentImmediately
        self._writer: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._cancels_written: list[int] = []
        self._flush_task: asyncio.Task[None] | None = None
        self.pacer = pacer or Pacer()
        self.delivery = delivery or DeliverySettings()
        self._room_timer: asyncio.TimerHandle | None = None

    @property
    def device_id(self) -> int:
        return self.principal.device_id

    @property
    def open(self) -> bool:
        return not self._closing

    @property
    def ready(self) -> bool:
        """auth_ok is queued: frames may follow it."""
        return self._ready and not self._closing

    # -- Writing ------------------------------------------------------------------------------

    def start_writer(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{self.id}")
        self._keepalive = asyncio.create_task(self._keepalive_loop(),
                                              name=f"ws-keepalive-{self.id}")

    def set_ready(self, withdrawn: list[int]) -> None:
        """auth_ok is queued: tell the phone what was withdrawn, then start pushing."""
        self._ready = True
        for message_id in dict.fromkeys([*withdrawn, *self._early_cancels]):
            self.withdraw(message_id)
        self._early_cancels.clear()
        self.note_new_work()

    def send(self, frame: Outgoing) -> None:
        if self._closing:
            return
        try:
            self._outbox.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("device %s is not reading its socket; disconnecting", self.device_id)
            self._drop_slow()

    def pong(self, payload: bytes) -> None:
        if not self._closing:
            with contextlib.suppress(asyncio.QueueFull):
                self._outbox.put_nowait(("pong", payload))

    def close(self, code: int, reason: str = "") -> None:
        """Ask the writer to send a close frame (after what is already queued, unless the
        queue is full) and end."""
        if self._closing:
            return
        self._closing = True
        while True:
            try:
                self._outbox.put_nowait(("close", code, reason))
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self._outbox.get_nowait()

    def _drop_slow(self) -> None:
        """The queue is full, so the writer is stuck behind a phone that does not read: a
        close frame queued now would never be reached. Stop the writer instead."""
        self._closing = True
        self._slow = True
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
        else:
            self._abort_transport()

    def _abort_transport(self) -> None:
        # abort, not close: close() would wait to flush a buffer the phone never reads.
        transport = self.ws._req.transport if self.ws._req else None
        if transport is not None:
            transport.abort()

    async def _bounded(self, write: Coroutine[object, object, object]) -> None:
        # A frame the phone does not take within a heartbeat means it is not reading.
        await asyncio.wait_for(write, self.heartbeat)

    async def _write_loop(self) -> None:
        ws = self.ws
        aborted = True
        try:
            while True:
                item = await self._outbox.get()
                if isinstance(item, bytes):
                    await self._bounded(ws.send_frame(item, WSMsgType.TEXT))
                elif item[0] == "cancel":
                    message_id = int(item[1])  # type: ignore[misc]
                    await self._bounded(ws.send_frame(protocol_cancel(message_id),
                                                      WSMsgType.TEXT))
                    self._cancel_written(message_id)
                elif item[0] == "ping":
                    await self._bounded(ws.ping())
                elif item[0] == "pong":
                    await self._bounded(ws.pong(item[1]))  # type: ignore[misc]
                else:
                    _, code, reason = item  # type: ignore[misc]
                    await self._bounded(ws.close(code=code, message=str(reason).encode()))
                    aborted = False
                    return
        except TimeoutError:
            log.warning("device %s took no frame for %s s; dropping", self.device_id,
                        self.heartbeat)
        except asyncio.CancelledError:
            if self._slow:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        ws.close(code=CloseCode.SLOW_CONSUMER, message=b"slow consumer"),
                        SLOW_CLOSE_GRACE,
                    )
        except (ConnectionError, RuntimeError):
            pass
        except Exception:
            # A writer that died must not leave a socket that reads but never writes: close
            # it, so the reader ends and what was in flight goes back to the queue.
            log.exception("writer of device %s failed", self.device_id)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    ws.close(code=CloseCode.INTERNAL_ERROR, message=b"internal error"),
                    SLOW_CLOSE_GRACE,
                )
        finally:
            self._closing = True
            if aborted:
                # The reader must end now, so the socket is detached and its messages
                # requeued, whatever state the writer left the socket in.
                self._abort_transport()
            if self._room_timer is not None:
                self._room_timer.cancel()
            if self._keepalive is not None:
                self._keepalive.cancel()

    async def _keepalive_loop(self) -> None:
        """Ping every heartbeat; no pong by the next one and the phone is gone (PROTOCOL.md).
        Its own task, so a writer stuck on a full socket cannot stop it: that ping is
        simply never answered."""
        asked: float | None = None
        while not self._closing:
            await asyncio.sleep(self.heartbeat)
            if asked is not None and self.last_pong < asked:
                log.info("device %s answered no ping; dropping", self.device_id)
                self._closing = True
                if self._writer is not None:
                    self._writer.cancel()  # its finally drops TCP, no close frame
                return
            asked = time.monotonic()
            self.send(("ping",))

    def _cancel_written(self, message_id: int) -> None:
        """The cancel is on the wire: the phone need not be told again at its next login."""
        self._cancels_written.append(message_id)
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self._flush_cancels())

    async def _flush_cancels(self) -> None:
        while self._cancels_written:
            ids, self._cancels_written = self._cancels_written, []
            try:
                await messages.withdrawn(self.pool, self.device_id, ids)
            except Exception as exc:
                # Harmless: the flag stays, and the phone hears the cancel again at login.
                log.warning("could not record cancels for device %s: %s", self.device_id, exc)
                return

    async def wait_closed(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    def stop_writer(self) -> None:
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()

    # -- The window ---------------------------------------------------------------------------

    def free_slots(self) -> int:
        return self.window - len(self.in_flight) - self.reserved

    @property
    def idle_with_room(self) -> bool:
        """Ready, with free slots, and believing nothing waits in its queue."""
        return self.ready and not self._queue_may_hold_work and self.free_slots() > 0

    def can_push_directly(self) -> bool:
        """A new message may skip the queue only if nothing can be waiting ahead of it, and
        never on a paced phone: only a claim counts SMS against the minute."""
        return (
            self.ready
            and not self.pacer.per_minute
            and not self._queue_may_hold_work
            and not self._pump_lock.locked()
            and self.free_slots() > 0
        )

    def push(self, message_id: int, attempt: int, frame: bytes) -> None:
        self.in_flight[message_id] = InFlight(attempt, frame, time.monotonic() + self.ack_timeout)
        self._recent.append(message_id)
        self.send(frame)

    def was_pushed(self, message_id: int) -> bool:
        return message_id in self.in_flight or message_id in self._recent

    def settle(self, message_id: int) -> None:
        """The phone acked (or reported on) the message: its slot is free."""
        if self.in_flight.pop(message_id, None) is not None and self._queue_may_hold_work:
            self.wake()

    def expect_work(self) -> None:
        self._queue_may_hold_work = True
        self._work_seq += 1

    def note_new_work(self) -> None:
        self.expect_work()
        self.wake()

    def wake(self) -> None:
        if not self.ready or self.free_slots() <= 0:
            return
        if self._pump_task is None or self._pump_task.done():
            self._pump_task = asyncio.create_task(self.pump())

    async def pump(self) -> None:
        """Claim waiting messages into the free slots, highest priority first."""
        async with self._pump_lock:
            while self.ready and self._queue_may_hold_work:
                free = self.free_slots()
                if free <= 0:
                    return
                allowance = self.pacer.allowance()
                if allowance == 0:
                    self._wake_when_paced()
                    return
                seen = self._work_seq
                try:
                    self.claims += 1
                    rows = await messages.claim(
                        self.pool, self.device_id, self.id, free, allowance
                    )
                except Exception as exc:
                    # Try again shortly: nothing else may wake us (no new send, no ack).
                    log.warning("could not claim messages for device %s: %s",
                                self.device_id, exc)
                    self._wake_later(CLAIM_RETRY)
                    return
                if allowance is not None:
                    if not rows:
                        # Either nothing waits (stop: a send or an ack wakes us) or the
                        # head waits for room in the minute (try when the oldest SMS of
                        # the minute leaves it). An empty log means the former.
                        if seen != self._work_seq:
                            continue  # work arrived during the claim: look again
                        if not self.pacer.busy():
                            self._queue_may_hold_work = False
                        else:
                            self._wake_when_paced()
                        return
                elif len(rows) < free:
                    self._queue_may_hold_work = seen != self._work_seq
                for row in rows:
                    await self._push_row(row)

    async def _push_row(self, row: asyncpg.Record) -> None:
        try:
            frame = self._frame_from_row(row)
        except Exception:
            # One damaged row must not strand the rest of the batch as dispatched.
            log.exception("message %s of device %s does not decrypt; marking it failed",
                          row["id"], self.device_id)
            try:
                await messages.fail_unreadable(self.pool, row["id"], self.device_id)
            except Exception as exc:
                # Left dispatched without an in-flight entry: the hub's sweep requeues it.
                log.warning("could not mark message %s failed: %s", row["id"], exc)
            return
        self.pacer.record(len(row["numbers"]))
        self.push(row["id"], row["attempt"], frame)

    def _wake_when_paced(self) -> None:
        self._wake_later(self.pacer.seconds_until_room())

    def _wake_later(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        if self._room_timer is None or self._room_timer.when() <= loop.time():
            self._room_timer = loop.call_later(delay, self.wake)

    def withdraw(self, message_id: int) -> None:
        """The message was cancelled or expired: tell the phone, free its slot. Its pending
        flag is cleared once the cancel is written; until then every login repeats it."""
        self.in_flight.pop(message_id, None)
        if not self._ready:
            self._early_cancels.append(message_id)
            return
        self.send(("cancel", message_id))
        if self._queue_may_hold_work:
            self.wake()

    def _frame_from_row(self, row: asyncpg.Record) -> bytes:
        open_ = self.principal.open
        return sms_frame(
            row["id"],
            row["attempt"],
            [open_(n, messages.NUMBER_PURPOSE) for n in row["numbers"]],
            open_(row["body"], messages.TEXT_PURPOSE),
            row["priority"],
            row["created_at"],
            row["expires_at"],
        )

    def in_flight_ids(self) -> list[int]:
        return list(self.in_flight)

    def resend_overdue(self, now: float) -> None:
        """Frames not acked within the ack timeout go again, same id and attempt."""
        for entry in self.in_flight.values():
            if entry.deadline <= now:
                entry.deadline = now + self.ack_timeout
                self.send(entry.frame)


ConnectionFactory = Callable[..., DeviceConnection]
