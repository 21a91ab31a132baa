"""The one task that writes to a phone's socket, its keepalive, and the frames it writes.

Nothing but the writer task writes to the socket: everything else enqueues frames. A phone
that stops reading fills its bounded queue (or leaves a frame unwritten for a heartbeat)
and is disconnected; the hub never waits on it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from smsnodes_hub.device.keepalive import Keepalive
from smsnodes_hub.device.protocol import CloseCode
from smsnodes_hub.device.protocol import cancel as protocol_cancel

log = logging.getLogger(__name__)

# A slow reader gets this long to take a 1008 close frame before TCP is dropped under it.
SLOW_CLOSE_GRACE = 1.0


@dataclass(frozen=True, slots=True)
class Text:
    """A JSON text frame, already encoded."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Ping:
    """The keepalive's WebSocket ping."""


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to the phone's WebSocket ping."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Cancel:
    """A `cancel` frame; once written, the writer reports it through `on_cancel_written`."""

    message_id: int


@dataclass(frozen=True, slots=True)
class Close:
    """A close frame: the last thing the writer writes."""

    code: CloseCode
    reason: str


WriterFrame = Text | Ping | Pong | Cancel | Close


class Outbox:
    """The frames waiting for the writer: bounded, first in first out, one reader. Not an
    asyncio.Queue, which holds four deques of about 760 bytes each even when empty: at ten
    thousand idle phones that alone was 30 MB."""

    __slots__ = ("_frames", "_limit", "_waiter")

    def __init__(self, limit: int) -> None:
        self._frames: list[WriterFrame] = []  # short (at most `limit`): pop(0) is cheap
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None

    def put(self, frame: WriterFrame) -> bool:
        """Queue `frame`; False (and nothing queued) when the outbox is full."""
        if len(self._frames) >= self._limit:
            return False
        self._frames.append(frame)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        return True

    def drop_oldest(self) -> None:
        if self._frames:
            del self._frames[0]

    async def get(self) -> WriterFrame:
        while not self._frames:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._frames.pop(0)


def _ignore_cancel(message_id: int) -> None:
    pass


def _ignore_stop() -> None:
    pass


class SocketWriter:
    """The writer task of one socket, its place in the hub's keepalive, and the bounded
    outbox between the rest of the hub and the writer."""

    __slots__ = (
        "_asked",
        "_keepalive",
        "_outbox",
        "_slow",
        "_task",
        "closing",
        "connection_id",
        "device_id",
        "heartbeat",
        "keepalive_slot",
        "last_pong",
        "on_cancel_written",
        "on_stopped",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        *,
        device_id: int,
        connection_id: uuid.UUID,
        keepalive: Keepalive,
        outbox_size: int,
    ) -> None:
        self.ws = ws
        self.device_id = device_id  # for the log
        self.connection_id = connection_id  # for the tasks' names
        self.heartbeat = keepalive.interval
        self.keepalive_slot = 0
        self.last_pong = time.monotonic()
        self.closing = False
        # Called with a message id once its cancel frame is on the wire.
        self.on_cancel_written: Callable[[int], None] = _ignore_cancel
        # Called once when the writer has ended, however it ended.
        self.on_stopped: Callable[[], None] = _ignore_stop
        self._slow = False
        self._outbox = Outbox(outbox_size)
        self._task: asyncio.Task[None] | None = None
        self._keepalive = keepalive
        self._asked: float | None = None  # when the last ping was queued

    @property
    def open(self) -> bool:
        return not self.closing

    def start(self) -> None:
        self._task = asyncio.create_task(self._write_loop(),
                                         name=f"ws-writer-{self.connection_id}")
        self._keepalive.add(self)

    def send(self, frame: WriterFrame) -> None:
        if self.closing:
            return
        if not self._outbox.put(frame):
            log.warning("device %s is not reading its socket; disconnecting", self.device_id)
            self._drop_slow()

    def pong(self, payload: bytes) -> None:
        if not self.closing:
            self._outbox.put(Pong(payload))  # a full outbox: the ping goes unanswered

    def close(self, code: CloseCode, reason: str = "") -> None:
        """Ask the writer to send a close frame (after what is already queued, unless the
        queue is full) and end."""
        if self.closing:
            return
        self.closing = True
        while not self._outbox.put(Close(code, reason)):
            self._outbox.drop_oldest()

    async def wait_closed(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def _drop_slow(self) -> None:
        """The queue is full, so the writer is stuck behind a phone that does not read: a
        close frame queued now would never be reached. Stop the writer instead."""
        self.closing = True
        self._slow = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
        else:
            self._abort_transport()

    def _abort_transport(self) -> None:
        # abort, not close: close() would wait to flush a buffer the phone never reads.
        # aiohttp has no public way to the request's transport from the response.
        transport = self.ws._req.transport if self.ws._req else None
        if transport is not None:
            transport.abort()

    async def _bounded(self, write: Coroutine[object, object, object]) -> None:
        # A frame the phone does not take within a heartbeat means it is not reading.
        # asyncio.timeout, not wait_for: wait_for wraps every frame in a task of its own.
        async with asyncio.timeout(self.heartbeat):
            await write

    async def _write(self, frame: WriterFrame) -> bool:
        """Write one frame; True when it was the close frame, the writer's last."""
        ws = self.ws
        match frame:
            case Text(data):
                await self._bounded(ws.send_frame(data, WSMsgType.TEXT))
            case Cancel(message_id):
                await self._bounded(ws.send_frame(protocol_cancel(message_id), WSMsgType.TEXT))
                self.on_cancel_written(message_id)
            case Ping():
                await self._bounded(ws.ping())
            case Pong(payload):
                await self._bounded(ws.pong(payload))
            case Close(code, reason):
                await self._bounded(ws.close(code=code, message=reason.encode()))
                return True
        return False

    async def _write_loop(self) -> None:
        ws = self.ws
        aborted = True
        try:
            while True:
                if await self._write(await self._outbox.get()):
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
            self.closing = True
            if aborted:
                # The reader must end now, so the socket is detached and its messages
                # requeued, whatever state the writer left the socket in.
                self._abort_transport()
            self.on_stopped()
            self._keepalive.discard(self)
            # The callbacks hold the window, which holds this writer: without the cycle a
            # closed connection is freed at once, not at the next full garbage collection.
            self.on_cancel_written = _ignore_cancel
            self.on_stopped = _ignore_stop

    def keepalive_due(self) -> bool:
        """Ping every heartbeat; no pong by the next one and the phone is gone (PROTOCOL.md).
        Called by the keepalive, not by a task of each socket (idle phones are many), and
        apart from the writer, so a writer stuck on a full socket cannot stop it: that ping
        is simply never answered. True: ping again a heartbeat from now."""
        if self.closing:
            return False
        if self._asked is not None and self.last_pong < self._asked:
            log.info("device %s answered no ping; dropping", self.device_id)
            self.closing = True
            if self._task is not None:
                self._task.cancel()  # its finally drops TCP, no close frame
            return False
        self._asked = time.monotonic()
        self.send(Ping())
        return not self.closing  # the ping may have found the outbox full
