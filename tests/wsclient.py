"""A bare protocol client for tests that need to control every frame (SimulatedPhone is the
well-behaved phone; this one can misbehave)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from typing import Any

import aiohttp
import orjson
from aiohttp import WSMsgType


class RawPhone:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession):
        self.ws = ws
        self.session = session
        self.auth: dict[str, Any] = {}

    @classmethod
    async def connect(
        cls, url: str, *, local_addr: str | None = None, autoping: bool = True,
        headers: dict[str, str] | None = None, compress: int = 0,
    ) -> RawPhone:
        connector = aiohttp.TCPConnector(local_addr=(local_addr, 0)) if local_addr else None
        session = aiohttp.ClientSession(connector=connector)
        ws = await session.ws_connect(url, autoping=autoping, max_msg_size=0, headers=headers,
                                      compress=compress)
        return cls(ws, session)

    @classmethod
    async def login(cls, url: str, username: str, password: str, **kwargs: Any) -> RawPhone:
        phone = await cls.connect(url, **kwargs)
        await phone.send({"type": "auth", "username": username, "password": password,
                          "device": {"model": "Pixel 7", "app": "1.4.2", "sims": 2}})
        phone.auth = await phone.recv()
        assert phone.auth["type"] == "auth_ok", phone.auth
        return phone

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(frame).decode())

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type != WSMsgType.TEXT:
            raise AssertionError(f"expected a text frame, got {msg.type} {msg.data!r}")
        return orjson.loads(msg.data)

    async def recv_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame of this type, skipping others."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - asyncio.get_running_loop().time()))
            if frame["type"] == kind:
                return frame

    async def recv_sms(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        return [await self.recv_type("sms", timeout) for _ in range(count)]

    async def nothing_for(self, seconds: float) -> None:
        """Assert no text frame arrives within `seconds`."""
        try:
            msg = await self.ws.receive(timeout=seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame {msg.type} {msg.data!r}")

    async def closed_with(self, timeout: float = 5.0) -> int | None:
        """Read until the hub closes; return its close code."""
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type == WSMsgType.CLOSE:
                return int(msg.data)  # the code in the hub's close frame
            if msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSING):
                return self.ws.close_code
            if msg.type == WSMsgType.ERROR:
                return self.ws.close_code

    async def ack(self, frame: dict[str, Any], ref: str | None = None) -> None:
        out: dict[str, Any] = {"type": "ack", "id": frame["id"], "attempt": frame["attempt"]}
        if ref:
            out["ref"] = ref
        await self.send(out)

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()


class StalledPhone:
    """A WebSocket phone on a bare TCP socket with a tiny receive buffer, so that it can
    truly stop reading (`stop_reading`): the kernel then stops taking the hub's bytes and
    the hub's writes back up, as with a frozen app on a real phone."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def login(cls, host: str, port: int, username: str, password: str) -> StalledPhone:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connect, so the advertised window stays small.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /ws/device HTTP/1.1\r\nHost: {host}:{port}\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        phone = cls(reader, writer)
        await phone.send({"type": "auth", "username": username, "password": password})
        auth = await phone.recv()
        assert auth["type"] == "auth_ok", auth
        return phone

    async def send(self, frame: dict[str, Any]) -> None:
        self.writer.write(client_frame(orjson.dumps(frame)))
        await self.writer.drain()

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next text frame (pings are skipped unanswered)."""
        while True:
            opcode, payload = await asyncio.wait_for(self._frame(), timeout)
            if opcode == 1:
                return orjson.loads(payload)
            assert opcode in (9, 10), (opcode, payload)

    async def _frame(self) -> tuple[int, bytes]:
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(length)

    def stop_reading(self) -> None:
        self.writer.transport.pause_reading()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.writer.transport.abort()  # type: ignore[attr-defined]


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A masked frame, as a client must send them."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = bytes([0x80 | opcode, 0x80 | size])
    elif size < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", size)
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
