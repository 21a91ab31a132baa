"""One authenticated phone connection: its single writer task, keepalive, and the window of
`sms` frames in flight."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson
from aiohttp import WSMsgType, web

from . import messages
from .accounts import Principal
from .config import DeliverySettings
from .pacing import Pacer
from .protocol import cancel as protocol_cancel
from .timefmt import wire_time

log = logging.getLogger(__name__)



CLAIM_RETRY = 1.0  # seconds before claiming again after the database failed us

# What the writer sends: a text frame, ("pong", payload) or ("close", code, reason).
Outgoing = bytes | tuple[str, int, str] | tuple[str, bytes]


@dataclass(slots=True)
class InFlight:
    attempt: int
    frame: bytes
    deadline: float


def sms_frame(
    message_id: int,
    attempt: int,
    to: list[str],
    text: str,
    priority: int,
    created_at: datetime,
    expires_at: datetime | None,
) -> bytes:
    return orjson.dumps({
        "type": "sms", "id": message_id, "attempt": attempt, "to": to, "message": text,
        "priority": priority, "createdAt": wire_time(created_at),
        "expiresAt": wire_time(expires_at),
    })


class DeviceConnection:
    """Nothing but the writer task writes to the socket: everything else enqueues frames.
    A phone that stops reading fills its bounded queue and is disconnected; the hub never
    waits on it."""

    __slots__ = (
        "_closing",
        "_outbox",
        "_pump_lock",
        "_pump_task",
        "_queue_may_hold_work",
        "_recent",
        "_room_timer",
        "_writer",
        "ack_timeout",
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
        self._closing = False
        self._outbox: asyncio.Queue[Outgoing] = asyncio.Queue(outbox_size)
        self._pump_task: asyncio.Task[None] | None = None
        self._pump_lock = asyncio.Lock()
        self._queue_may_hold_work = True  # until a claim comes back short
        self._recent: deque[int] = deque(maxlen=256)  # ids pushed lately: sentImmediately
        self._writer: asyncio.Task[None] | None = None
        self.pacer = pacer or Pacer()
        self.delivery = delivery or DeliverySettings()
        self._room_timer: asyncio.TimerHandle | None = None

    @property
    def device_id(self) -> int:
        return self.principal.device_id

    @property
    def open(self) -> bool:
        return not self._closing

    # -- Writing ------------------------------------------------------------------------------

    def start_writer(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{self.id}")

    def send(self, frame: bytes) -> None:
        if self._closing:
            return
        try:
            self._outbox.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("device %s is not reading its socket; disconnecting", self.device_id)
            self.close(1008, "slow consumer")

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

    async def _write_loop(self) -> None:
        ws = self.ws
        next_ping = time.monotonic() + self.heartbeat
        ping_sent_at: float | None = None
        try:
            while True:
                timeout = max(0.0, next_ping - time.monotonic())
                try:
                    item = await asyncio.wait_for(self._outbox.get(), timeout)
                except TimeoutError:
                    now = time.monotonic()
                    if ping_sent_at is not None and self.last_pong < ping_sent_at:
                        # No pong within one heartbeat: the phone is gone (PROTOCOL.md).
                        log.info("device %s answered no ping; dropping", self.device_id)
                        transport = ws._req.transport if ws._req else None
                        if transport is not None:
                            transport.close()
                        return
                    await ws.ping()
                    ping_sent_at = now
                    next_ping = now + self.heartbeat
                    continue
                if isinstance(item, bytes):
                    await ws.send_frame(item, WSMsgType.TEXT)
                elif item[0] == "pong":
                    await ws.pong(item[1])  # type: ignore[arg-type]
                else:
                    _, code, reason = item
                    await ws.close(code=code, message=str(reason).encode())  # type: ignore[arg-type]
                    return
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            return
        except Exception:
            # A writer that died must not leave a socket that reads but never writes: close
            # it, so the reader ends and what was in flight goes back to the queue.
            log.exception("writer of device %s failed", self.device_id)
            with contextlib.suppress(Exception):
                await ws.close(code=1011, message=b"internal error")
        finally:
            self._closing = True
            if self._room_timer is not None:
                self._room_timer.cancel()

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

    def can_push_directly(self) -> bool:
        """A new message may skip the queue only if nothing can be waiting ahead of it."""
        return (
            not self._closing
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

    def note_new_work(self) -> None:
        self._queue_may_hold_work = True
        self.wake()

    def wake(self) -> None:
        if self._closing or self.free_slots() <= 0:
            return
        if self._pump_task is None or self._pump_task.done():
            self._pump_task = asyncio.create_task(self.pump())

    async def pump(self) -> None:
        """Claim waiting messages into the free slots, highest priority first."""
        async with self._pump_lock:
            while not self._closing and self._queue_may_hold_work:
                free = self.free_slots()
                if free <= 0:
                    return
                allowance = self.pacer.allowance()
                if allowance == 0:
                    self._wake_when_paced()
                    return
                try:
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
                    if not rows:  # the head of the queue waits for room in the minute
                        self._wake_when_paced()
                        return
                elif len(rows) < free:
                    self._queue_may_hold_work = False
                for row in rows:
                    self.pacer.record(len(row["numbers"]))
                    self.push(row["id"], row["attempt"], self._frame_from_row(row))

    def _wake_when_paced(self) -> None:
        self._wake_later(self.pacer.seconds_until_room())

    def _wake_later(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        if self._room_timer is None or self._room_timer.when() <= loop.time():
            self._room_timer = loop.call_later(delay, self.wake)

    def withdraw(self, message_id: int) -> None:
        """The message was cancelled or expired: tell the phone, free its slot."""
        self.in_flight.pop(message_id, None)
        self.send(protocol_cancel(message_id))
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

    def resend_overdue(self, now: float) -> None:
        """Frames not acked within the ack timeout go again, same id and attempt."""
        for entry in self.in_flight.values():
            if entry.deadline <= now:
                entry.deadline = now + self.ack_timeout
                self.send(entry.frame)


ConnectionFactory = Callable[..., DeviceConnection]
