"""SimulatedPhone: the test and benchmark phone (what scripts/device_sim.py exports).

A PhoneSession whose sms frames are "sent" by timers, as PhoneBehaviour says, with every
frame it receives and writes recorded for assertions. The real agent is gateway.Gateway.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import aiohttp

from .channel import EventSink
from .errors import AuthFailed, PhoneError
from .frames import (
    MAX_FRAME_BYTES,
    Frame,
    encode,
    inbound_frame,
    parse_time,
    sms_key,
    status_frame,
    utc_now,
)
from .radio.sim import DEFAULT_BEHAVIOUR, FAILURE_ERROR, PhoneBehaviour
from .session import PhoneSession

__all__ = ["AuthFailed", "PhoneBehaviour", "PhoneError", "SimulatedPhone", "utc_now"]


class SimulatedPhone(PhoneSession):
    """One gateway phone: a run-loop task holding at most one WebSocket to the hub."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        behaviour: PhoneBehaviour = DEFAULT_BEHAVIOUR,
        device_info: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        session: aiohttp.ClientSession | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        super().__init__(
            url,
            username,
            password,
            device_info
            if device_info is not None
            else {"model": "device_sim", "app": "sim-1", "sims": 1},
            token=token,
            session=session,
            on_event=on_event,
            reconnect=behaviour.reconnect,
            backoff_initial=behaviour.backoff_initial,
            backoff_max=behaviour.backoff_max,
            rng=random.Random(behaviour.seed),
        )
        self.behaviour = behaviour
        self.received: list[Frame] = []  # first arrival of each (id, attempt) sms frame
        self.cancelled: list[int] = []
        self.reports: list[Frame] = []  # every status frame created (once, not resends)
        self._seen: set[tuple[int, int]] = set()
        self._cancelled_at: dict[int, int] = {}  # id -> frame sequence number of its cancel

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _progress(self) -> str:
        return f"sms received={len(self.received)}"

    # ---- sending ------------------------------------------------------------------------

    async def send_inbound(self, sender: str, text: str, ref: str | None = None) -> str:
        """Forward a received SMS; it stays in the outbox (and is resent) until ``ok``."""
        ref = ref if ref is not None else str(uuid.uuid4())
        frame = inbound_frame(ref, sender, text)
        size = len(encode(frame).encode())
        if size > MAX_FRAME_BYTES:
            # A frame the hub rejects with 1009 would kill every connection it is resent on.
            raise ValueError(f"inbound frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
        await self.send_reliably(frame)
        self._event(f"inbound ref={ref} from={sender}")
        return ref

    async def send_heartbeat(self, battery: int, charging: bool, signal: int) -> bool:
        """Telemetry; returns False (and drops it) when not connected."""
        frame = {"type": "heartbeat", "battery": battery, "charging": charging, "signal": signal}
        return await self.send(frame)

    async def send_raw(self, frame: Frame | str | bytes) -> None:
        """Send anything: a dict as JSON text, a str verbatim as text, bytes as a binary frame.

        Raises ConnectionError when not connected, so a test cannot silently send nothing.
        """
        async with self._send_lock:
            ws = self._live
            if ws is None:
                raise ConnectionError(f"{self.username}: not connected")
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            elif isinstance(frame, str):
                await ws.send_str(frame)
            else:
                await ws.send_str(encode(frame))
                self.outgoing.append(frame)

    async def wait_for_sms(self, count: int, timeout: float = 5.0) -> list[Frame]:
        """Wait for ``count`` distinct sms frames; return the first ``count`` of them."""
        await self.wait_for(lambda: len(self.received) >= count, timeout)
        return self.received[:count]

    # ---- incoming -----------------------------------------------------------------------

    def _on_cancel(self, msg_id: int, seq: int) -> None:
        self._cancelled_at[msg_id] = seq
        self.cancelled.append(msg_id)

    def _on_sms(self, frame: Frame, seq: int) -> None:
        key = sms_key(frame)
        if key is None:
            self._event(f"ignored malformed sms frame id={frame.get('id')!r}")
            return
        msg_id, attempt = key
        duplicate = key in self._seen
        if not duplicate:
            self._seen.add(key)
            self.received.append(frame)
        message = str(frame.get("message", ""))
        self._event(
            f"sms id={msg_id} attempt={attempt} priority={frame.get('priority')} "
            f"to={len(frame['to'])} chars={len(message)}" + (" duplicate" if duplicate else "")
        )
        self._spawn(self._handle_sms(frame, attempt, duplicate, seq))

    async def _handle_sms(self, frame: Frame, attempt: int, duplicate: bool, seq: int) -> None:
        behaviour = self.behaviour
        msg_id = frame["id"]
        if behaviour.ack:
            if behaviour.ack_delay:
                await asyncio.sleep(behaviour.ack_delay)
            await self.send({"type": "ack", "id": msg_id, "attempt": attempt})
        if duplicate or behaviour.sent_delay is None:
            return  # a repeated (id, attempt) is acked again, never sent twice
        if behaviour.sent_delay:
            await asyncio.sleep(behaviour.sent_delay)
        if self._cancelled_at.get(msg_id, -1) > seq:
            return  # withdrawn before we "sent" it
        expires = parse_time(frame.get("expiresAt"))
        if expires is not None and datetime.now(UTC) > expires:
            self._event(f"expired id={msg_id} attempt={attempt}; not sending")
            return  # never start sending after expiresAt; the hub expires it itself
        delivered: list[str] = []
        for to in frame["to"]:
            if behaviour.fail_rate and self._rng.random() < behaviour.fail_rate:
                await self._report(msg_id, attempt, to, "failed", FAILURE_ERROR)
            else:
                await self._report(msg_id, attempt, to, "sent")
                delivered.append(to)
        if behaviour.delivered_delay is None or not delivered:
            return
        if behaviour.delivered_delay:
            await asyncio.sleep(behaviour.delivered_delay)
        for to in delivered:
            await self._report(msg_id, attempt, to, "delivered")

    async def _report(
        self, msg_id: int, attempt: int, to: str, status: str, error: str | None = None
    ) -> None:
        ref = str(uuid.uuid4()) if self.behaviour.use_refs else None
        frame = status_frame(ref, msg_id, attempt, to, status, error)
        self._event(f"status id={msg_id} attempt={attempt} to={to} {status}")
        if ref is not None:
            await self.send_reliably(frame)
        else:
            await self.send(frame)  # fire and forget: lost if offline, like a naive app
        # Only now, in the outbox: tests wait for "len(reports) == n and outbox_size == 0"
        # to mean every report was confirmed, which a report not yet queued would break.
        self.reports.append(frame)
