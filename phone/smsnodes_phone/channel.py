"""The frames of one phone session: decoding and recording what arrives, dispatching it
to the hooks a subclass fills in, and the single writer path with its outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from . import connection
from .connection import Connector
from .frames import Frame, decode, encode
from .outbox import Outbox

EventSink = Callable[[str], None]


class FrameChannel(Connector):
    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession | None,
        *,
        on_event: EventSink | None,
        outbox: Outbox | None,
        record: bool,
    ) -> None:
        super().__init__(url, session)
        self._on_event = on_event
        self._record_frames = record
        # Observations (kept only with record=True, for tests).
        self.frames: list[Frame] = []  # every frame received, in order
        self.errors: list[Frame] = []
        self.outgoing: list[Frame] = []  # every frame written after auth, resends included
        self._frame_seq = 0
        self._outbox = outbox if outbox is not None else Outbox()
        self._send_lock = asyncio.Lock()  # the single writer path
        self._live: aiohttp.ClientWebSocketResponse | None = None  # authed socket, for writes
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- incoming frames ----------------------------------------------------------------

    async def _receive_frame(
        self, ws: aiohttp.ClientWebSocketResponse, wait: float
    ) -> Frame | None:
        """Next JSON frame (recorded), or None once the socket closes or stays silent."""
        while True:
            try:
                msg = await ws.receive(timeout=wait)
            except TimeoutError:
                return None
            if msg.type is aiohttp.WSMsgType.TEXT:
                frame = self._decode(msg.data)
                if frame is not None:
                    self._record(frame)
                    self._notify()
                    return frame
            elif msg.type is not aiohttp.WSMsgType.BINARY:
                return None

    async def _drain_until_closed(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        # The hub closes right after auth_failed; reading on yields its close code.
        while await self._receive_frame(ws, connection.CLOSE_DRAIN_TIMEOUT) is not None:
            pass

    # ---- incoming frames ----------------------------------------------------------------

    def _decode(self, data: str) -> Frame | None:
        frame = decode(data)
        if frame is None:
            self._event(f"ignored a text frame that is not a JSON object ({len(data)} chars)")
        return frame

    def _record(self, frame: Frame) -> None:
        if self._record_frames:
            self.frames.append(frame)
        self._frame_seq += 1

    def _dispatch(self, frame: Frame) -> None:
        self._record(frame)
        kind = frame.get("type")
        if kind == "sms":
            self._on_sms(frame, self._frame_seq)
        elif kind == "cancel":
            msg_id = frame.get("id")
            self._event(f"cancel id={msg_id}")
            if isinstance(msg_id, int) and not isinstance(msg_id, bool):
                self._on_cancel(msg_id, self._frame_seq)
        elif kind in ("ok", "error"):
            ref = frame.get("ref")
            if kind == "error":
                # An error is final (e.g. unknown message): resending would fail again.
                if self._record_frames:
                    self.errors.append(frame)
                self._event(f"error ref={ref} error={frame.get('error')!r}")
            self._outbox.pop(ref)
            if ref is not None:
                self._on_reply(ref, frame)
        else:
            self._event(f"ignored frame type={kind!r}")
        self._notify()

    # ---- hooks for subclasses -----------------------------------------------------------

    def _on_sms(self, frame: Frame, seq: int) -> None:
        """An sms frame arrived (seq orders it against cancels); the default acks it."""

    def _on_cancel(self, msg_id: int, seq: int) -> None:
        """The hub withdrew a message."""

    def _on_reply(self, ref: Any, frame: Frame) -> None:
        """The hub answered ``ok`` or ``error`` for a ref (the outbox already dropped it)."""

    def _on_auth_ok(self, auth_ok: Frame) -> None:
        """A connection authenticated; ``self.token`` is the current token."""

    def _on_live(self) -> None:
        """The connection is ready for writes (the outbox was resent)."""

    def _on_token_refused(self) -> None:
        """The hub refused the token; the password is tried next."""

    # ---- writer -------------------------------------------------------------------------

    async def send(self, frame: Frame) -> bool:
        """Send now if connected; returns False (and drops the frame) when offline."""
        async with self._send_lock:
            ws = self._live
            return ws is not None and await self._write(ws, frame)

    async def send_reliably(self, frame: Frame) -> None:
        """Into the outbox and onto the wire in one critical section: see _go_live."""
        async with self._send_lock:
            self._outbox.put(frame)
            ws = self._live
            if ws is not None:
                await self._write(ws, frame)

    async def _write(self, ws: aiohttp.ClientWebSocketResponse, frame: Frame) -> bool:
        try:
            await ws.send_str(encode(frame))
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            return False  # the read loop notices the closed socket and reconnects
        if self._record_frames:
            self.outgoing.append(frame)
        return True


    # ---- helpers ----

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _notify(self) -> None:
        # Wake every current waiter, then arm a fresh event for the next change.
        self._changed.set()
        self._changed = asyncio.Event()

    def _event(self, text: str) -> None:
        if self._on_event is not None:
            self._on_event(text)
