"""A bare protocol client for tests that need to control every frame (SimulatedPhone is the
well-behaved phone; this one can misbehave)."""

from __future__ import annotations

import asyncio
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
        cls, url: str, *, local_addr: str | None = None, autoping: bool = True
    ) -> RawPhone:
        connector = aiohttp.TCPConnector(local_addr=(local_addr, 0)) if local_addr else None
        session = aiohttp.ClientSession(connector=connector)
        ws = await session.ws_connect(url, autoping=autoping, max_msg_size=0)
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
