"""One authenticated phone connection: who it is, its socket writer (writer.py) and its
window of `sms` frames in flight (window.py). The hub, the endpoint and the send path talk
to this object; it hands each call to the part that owns it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import asyncpg
from aiohttp import web

from smsnodes_hub.auth.accounts import Principal
from smsnodes_hub.config import DeliverySettings
from smsnodes_hub.device.keepalive import Keepalive
from smsnodes_hub.device.pacing import Pacer
from smsnodes_hub.device.protocol import CloseCode
from smsnodes_hub.device.window import Window
from smsnodes_hub.device.writer import SocketWriter, Text
from smsnodes_hub.messaging.lanes import Lanes


class DeviceConnection:
    """A phone's socket as the hub sees it. Only the writer writes to the socket; the window
    decides which `sms` and `cancel` frames it is given."""

    __slots__ = (
        "connected_at",
        "delivery",
        "id",
        "lanes",
        "pool",
        "principal",
        "remote",
        "window",
        "writer",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        principal: Principal,
        pool: asyncpg.Pool,
        lanes: Lanes,
        *,
        window: int,
        ack_timeout: float,
        keepalive: Keepalive,
        outbox_size: int,
        remote: str,
        pacer: Pacer | None = None,
        delivery: DeliverySettings | None = None,
    ) -> None:
        self.id = uuid.uuid4()
        self.principal = principal
        self.pool = pool
        self.lanes = lanes
        self.remote = remote
        self.connected_at = time.time()
        self.delivery = delivery or DeliverySettings()
        self.writer = SocketWriter(
            ws,
            device_id=principal.phone_id,
            connection_id=self.id,
            keepalive=keepalive,
            outbox_size=outbox_size,
        )
        self.window = Window(
            self.writer,
            principal,
            pool,
            lanes,
            self.id,
            size=window,
            ack_timeout=ack_timeout,
            pacer=pacer or Pacer(),
        )
        self.writer.on_cancel_written = self.window.cancel_written
        self.writer.on_stopped = self.window.stop

    @property
    def device_id(self) -> int:
        return self.principal.phone_id

    @property
    def open(self) -> bool:
        return self.writer.open

    @property
    def ready(self) -> bool:
        """auth_ok is queued: frames may follow it."""
        return self.window.ready

    # -- The writer ---------------------------------------------------------------------------

    def start_writer(self) -> None:
        self.writer.start()

    def send(self, frame: bytes) -> None:
        """Queue a text frame (auth_ok, ok, error): the writer sends it in order."""
        self.writer.send(Text(frame))

    def pong(self, payload: bytes) -> None:
        self.writer.pong(payload)

    def pong_received(self) -> None:
        self.writer.last_pong = time.monotonic()

    def close(self, code: CloseCode, reason: str = "") -> None:
        self.writer.close(code, reason)

    async def wait_closed(self) -> None:
        await self.writer.wait_closed()

    def stop_writer(self) -> None:
        self.writer.stop()

    # -- The window ---------------------------------------------------------------------------

    @property
    def reserved(self) -> int:
        """Slots promised to send requests whose insert is under way (messaging/sending.py)."""
        return self.window.reserved

    @reserved.setter
    def reserved(self, value: int) -> None:
        self.window.reserved = value

    @property
    def claims(self) -> int:
        return self.window.claims

    @property
    def idle_with_room(self) -> bool:
        return self.window.idle_with_room

    def set_ready(self, withdrawn: list[int]) -> None:
        self.window.set_ready(withdrawn)

    def free_slots(self) -> int:
        return self.window.free_slots()

    def can_push_directly(self) -> bool:
        return self.window.can_push_directly()

    def push(self, message_id: int, attempt: int, frame: bytes) -> None:
        self.window.push(message_id, attempt, frame)

    def was_pushed(self, message_id: int) -> bool:
        return self.window.was_pushed(message_id)

    def settle(self, message_id: int) -> None:
        self.window.settle(message_id)

    def settle_attempt(self, message_id: int, attempt: int) -> None:
        self.window.settle_attempt(message_id, attempt)

    def expect_work(self) -> None:
        self.window.expect_work()

    def note_new_work(self) -> None:
        self.window.note_new_work()

    async def pump(self) -> None:
        await self.window.pump()

    def withdraw(self, message_id: int) -> None:
        self.window.withdraw(message_id)

    def in_flight_ids(self) -> list[int]:
        return self.window.in_flight_ids()

    def resend_overdue(self, now: float) -> None:
        self.window.resend_overdue(now)


ConnectionFactory = Callable[..., DeviceConnection]
