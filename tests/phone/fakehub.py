"""A hub the test scripts: a real WebSocket server on loopback speaking the hub's side of
PROTOCOL.md, for what the real hub does only by chance (send an sms frame the phone has
already acked, on the same connection or after a reconnect).

It accepts any auth (a password login gets the token ``fake-token``), answers ``ok`` to
every frame with a ``ref``, records every frame, and sends what the test pushes.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import WSMsgType, web

from tests.support import until

TOKEN = "fake-token"


class FakeHub:
    def __init__(self) -> None:
        self.auths: list[dict[str, Any]] = []
        self.frames: list[dict[str, Any]] = []  # after auth, in order, every connection
        self._ws: web.WebSocketResponse | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> FakeHub:
        app = web.Application()
        app.router.add_get("/ws/device", self._connection)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/ws/device"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _connection(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        auth = json.loads((await ws.receive()).data)
        self.auths.append(auth)
        await ws.send_json({"type": "auth_ok", "deviceId": 1, "username": "phone-1",
                            "token": TOKEN, "heartbeat": 30, "window": 10, "protocol": 1})
        self._ws = ws
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            self.frames.append(frame)
            if "ref" in frame:
                await ws.send_json({"type": "ok", "ref": frame["ref"]})
        if self._ws is ws:
            self._ws = None
        return ws

    async def connected(self, count: int) -> None:
        """Wait until the phone has authenticated ``count`` times in all."""
        await until(lambda: len(self.auths) >= count and self._ws is not None, 15,
                    f"the phone did not authenticate {count} time(s)")

    async def push(self, frame: dict[str, Any]) -> None:
        assert self._ws is not None, "no phone connected"
        await self._ws.send_json(frame)

    async def drop(self) -> None:
        """Close the phone's connection as a restarting hub does (1001)."""
        assert self._ws is not None, "no phone connected"
        ws, self._ws = self._ws, None
        await ws.close(code=1001)

    def of_type(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == kind
                and all(f.get(k) == v for k, v in fields.items())]

    async def wait_for(self, kind: str, count: int, **fields: Any) -> list[dict[str, Any]]:
        await until(lambda: len(self.of_type(kind, **fields)) >= count, 15,
                    f"fewer than {count} {kind} frames with {fields}")
        return self.of_type(kind, **fields)
