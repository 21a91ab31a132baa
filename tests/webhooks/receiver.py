"""The user's webhook receiver for the tests: a real HTTP(S) server on 127.0.0.1 that
records every request and verifies every signature with the independent `standardwebhooks`
package; and the calls that register a webhook and read its delivery log."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from standardwebhooks.webhooks import Webhook

from tests.support import basic, get

NUMBER = "+1234567890"
SENDER = "+15550001111"
# Receivers here listen on 127.0.0.1 over http: allowed explicitly, as an operator would for
# a receiver on their own network. Short retries keep the suite fast.
LOCAL = {
    "SMSNODES_WEBHOOKS_ALLOW_HTTP": "true",
    "SMSNODES_WEBHOOKS_ALLOW_PRIVATE": "true",
    "SMSNODES_WEBHOOKS_RETRY_BACKOFF": "0.1",
    "SMSNODES_WEBHOOKS_RETRY_BACKOFF_MAX": "0.2",
}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """The user's server: records every request, answers scripted statuses per path (then
    `default`), and verifies every signature with the path's secret."""

    base: str = ""
    requests: list[Received] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    default: int = 200
    delays: list[float] = field(default_factory=list)  # seconds before answering, in turn
    location: str = ""  # for 3xx answers
    secrets: dict[str, str] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(Received(request.path, dict(request.headers), body,
                                      time.monotonic()))
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        planned = self.script.get(request.path)
        status = planned.pop(0) if planned else self.default
        headers = {"Location": self.location} if 300 <= status < 400 else {}
        return web.Response(status=status, text="thanks", headers=headers)

    def url(self, path: str = "/hook") -> str:
        return self.base + path

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def events(self, path: str = "/hook") -> list[dict[str, Any]]:
        """Every request to `path`, its signature verified; raises if one does not verify."""
        verifier = Webhook(self.secrets[path])
        out = []
        for r in self.on(path):
            event = verifier.verify(r.body, r.headers)
            assert r.headers["webhook-id"] == event["id"]
            assert r.headers["Content-Type"] == "application/json"
            out.append(event)
        return out

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"receiver: condition not met: {self.requests}"
            await asyncio.sleep(0.02)

    async def count(self, path: str, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        await self.wait_for(lambda: len(self.on(path)) >= n, timeout)
        return self.events(path)


async def serve_receiver(aiohttp_server: Any, tls: ssl.SSLContext | None = None) -> Receiver:
    """A receiver listening on 127.0.0.1 (over TLS with `tls`, a server context)."""
    r = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", r.handle)
    server = await aiohttp_server(app, host="127.0.0.1", ssl=tls)
    scheme = "https" if tls is not None else "http"
    r.base = f"{scheme}://127.0.0.1:{server.port}"
    return r


async def register(client: TestClient, receiver: Receiver, events: list[str],
                   path: str = "/hook", headers: dict[str, str] | None = None,
                   url: str | None = None) -> dict[str, Any]:
    """Register a webhook to `path` on the receiver (or to `url`, whose path is `path`)."""
    resp = await client.post("/api/webhooks",
                             json={"url": url or receiver.url(path), "events": events},
                             headers=basic() if headers is None else headers)
    body = await resp.json()
    assert resp.status == 201, body
    receiver.secrets[path] = body["secret"]
    return body


async def deliveries(client: TestClient, webhook_id: int, query: str = "") -> dict[str, Any]:
    return await get(client, f"/api/webhooks/{webhook_id}/deliveries{query}")
