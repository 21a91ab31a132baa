"""The socket writer on its own (a stand-in socket, no database), and the close codes
against the documented table."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any, cast

import orjson
from aiohttp import WSMsgType, web

from smsnodes_hub.device.protocol import CloseCode
from smsnodes_hub.device.writer import Cancel, Close, Ping, Pong, SocketWriter, Text

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


class FakeRequest:
    def __init__(self) -> None:
        self.transport = FakeTransport()


class FakeSocket:
    """Records what the writer writes; `stuck` makes every write hang (a phone not reading)."""

    def __init__(self, *, stuck: bool = False) -> None:
        self.written: list[tuple[Any, ...]] = []
        self.stuck = stuck
        self._req = FakeRequest()

    async def _hang(self) -> None:
        if self.stuck:
            await asyncio.Event().wait()

    async def send_frame(self, data: bytes, kind: WSMsgType) -> None:
        await self._hang()
        self.written.append(("text", data, kind))

    async def ping(self) -> None:
        await self._hang()
        self.written.append(("ping",))

    async def pong(self, payload: bytes) -> None:
        await self._hang()
        self.written.append(("pong", payload))

    async def close(self, *, code: int, message: bytes) -> bool:
        self.written.append(("close", code, message))
        return True


def writer(ws: FakeSocket, *, outbox_size: int = 8, heartbeat: float = 5.0) -> SocketWriter:
    return SocketWriter(cast(web.WebSocketResponse, ws), device_id=7,
                        connection_id=uuid.uuid4(), heartbeat=heartbeat, outbox_size=outbox_size)


async def test_frames_go_out_in_order_and_the_close_frame_ends_the_writer() -> None:
    ws = FakeSocket()
    w = writer(ws)
    cancelled: list[int] = []
    stopped: list[bool] = []
    w.on_cancel_written = cancelled.append
    w.on_stopped = lambda: stopped.append(True)
    w.send(Text(b'{"type":"ok","ref":1}'))
    w.send(Cancel(42))
    w.send(Ping())
    w.pong(b"p")
    w.start()
    w.close(CloseCode.GOING_AWAY, "hub shutting down")
    await asyncio.wait_for(w.wait_closed(), 2)
    assert ws.written == [
        ("text", b'{"type":"ok","ref":1}', WSMsgType.TEXT),
        ("text", orjson.dumps({"type": "cancel", "id": 42}), WSMsgType.TEXT),
        ("ping",),
        ("pong", b"p"),
        ("close", 1001, b"hub shutting down"),
    ]
    assert cancelled == [42]
    assert stopped == [True]
    assert not ws._req.transport.aborted  # a clean close, TCP is not cut under it
    w.send(Text(b"late"))  # after the close: dropped, no error
    assert not w.open


async def test_a_full_outbox_drops_the_phone_with_1008_and_cuts_tcp() -> None:
    ws = FakeSocket(stuck=True)
    w = writer(ws, outbox_size=2)
    w.start()
    for n in range(4):  # one taken by the stuck write, two queued, the fourth overflows
        w.send(Text(b"%d" % n))
        await asyncio.sleep(0)
    await asyncio.wait_for(w.wait_closed(), 3)
    assert ws.written == [("close", CloseCode.SLOW_CONSUMER, b"slow consumer")]
    assert ws._req.transport.aborted
    assert not w.open


async def test_a_close_on_a_full_outbox_evicts_the_oldest_frame() -> None:
    ws = FakeSocket()
    w = writer(ws, outbox_size=2)
    w.send(Text(b"1"))
    w.send(Text(b"2"))
    w.close(CloseCode.REPLACED, "replaced")
    w.start()
    await asyncio.wait_for(w.wait_closed(), 2)
    assert ws.written == [("text", b"2", WSMsgType.TEXT), ("close", 4409, b"replaced")]


def test_frames_are_frozen_values() -> None:
    assert Close(CloseCode.NORMAL, "x") == Close(CloseCode.NORMAL, "x")
    assert Pong(b"a") != Pong(b"b")
    assert not hasattr(Text(b""), "__dict__")


def test_every_documented_close_code_is_a_close_code_and_back() -> None:
    table = DOCS.read_text().split("Every close code", 1)[1]
    documented = {int(code) for code in re.findall(r"^\| (\d{4}) \|", table, re.MULTILINE)}
    assert documented == {int(code) for code in CloseCode}
