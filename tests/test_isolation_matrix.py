"""One account never reaches another's data: every route of the app's route table (and every
frame of the device socket) by every kind of credential by the other account's ids (its
message, inbound SMS, webhook and its deliveries, API token, phone session, idempotency key,
device).

Every cell that names the other account's id answers exactly as for an id that does not
exist (a 404 for a credential that logs in, not a 403: nothing tells that the id exists) and
writes no row; every cell leaves the other account's data as its owner sees it; lists and
the caller's own resources never show the other account's. The dashboard is the operator's:
no phone or API credential opens any of its routes. A route of the table without a row here
fails the test, which names it."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from tests.dashboard_support import add_operator, login
from tests.fuzz.harness import marks_query
from tests.support import NUMBER, PASSWORD, HubFactory, Seeded, seed_account, until
from tests.webhooks.receiver import LOCAL, Receiver

KINDS = ("body password", "basic", "api token", "session token", "dashboard session")
LOGS_IN = {"basic", "api token"}  # what authenticates an /api call (body password: send-sms)
MISSING = 987_654_321  # an id nobody has
PUBLIC = {("GET", "/api/health"), ("GET", "/api/openapi.json"), ("GET", "/docs"),
          ("GET", "/metrics")}


@dataclass
class World:
    hub: TestClient
    pool: asyncpg.Pool
    mine: Seeded  # the caller
    theirs: Seeded  # the other account
    operator: aiohttp.ClientSession  # logged in to the dashboard, and nothing else
    marks: str
    statuses: list[int] = field(default_factory=list)  # of the calls of the current cell

    def session(self, kind: str) -> Any:
        return self.operator if kind == "dashboard session" else self.hub

    def headers(self, kind: str) -> dict[str, str]:
        me = self.mine
        if kind == "basic":
            raw = base64.b64encode(f"{me.username}:{PASSWORD}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        if kind in ("api token", "session token"):
            token = me.api_token if kind == "api token" else me.session_token
            return {"Authorization": f"Bearer {token}"}
        return {}

    def body(self, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        if kind == "body password":
            return {"deviceUsername": self.mine.username, "password": PASSWORD, **fields}
        return fields

    async def call(self, kind: str, method: str, path: str, json: Any = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        resp = await self.session(kind).request(
            method, path, json=None if json is None else self.body(kind, json),
            headers={**self.headers(kind), **(headers or {})}, allow_redirects=False)
        text = await resp.text()
        self.statuses.append(resp.status)
        return resp.status, (await resp.json() if resp.content_type == "application/json"
                             else text)

    async def written(self) -> dict[str, str]:
        row = await self.pool.fetchrow(self.marks)
        assert row is not None
        return dict(row)

    async def their_view(self) -> Any:
        """Everything the other account sees of its own data, through its own password."""
        auth = self.theirs.auth()
        seen = []
        for path in ("/api/messages", "/api/inbound", "/api/webhooks", "/api/tokens",
                     "/api/device", f"/api/messages/{self.theirs.message_id}",
                     f"/api/webhooks/{self.theirs.webhook_id}/deliveries"):
            resp = await self.hub.get(path, headers=auth)
            seen.append((path, resp.status, _without_clocks(await resp.json())))
        return seen


def _without_clocks(value: Any) -> Any:
    """A view without the fields a login or a timer moves (lastUsedAt, lastSeenAt...)."""
    if isinstance(value, dict):
        return {k: _without_clocks(v) for k, v in value.items()
                if k not in ("lastUsedAt", "lastSeenAt", "nextAttemptAt", "online",
                             "connectedSince")}
    if isinstance(value, list):
        return [_without_clocks(v) for v in value]
    return value


Cell = Callable[[World, str], Awaitable[None]]


def same_as_missing(status: int, body: Any, missing_status: int, missing_body: Any,
                    foreign: int, what: str) -> None:
    """The answer to another account's id is the answer to an id that does not exist."""
    assert status == missing_status, f"{what}: {status} {body} (missing id: {missing_status})"
    shown = re.sub(rf"\b{foreign}\b", str(MISSING), str(body))
    assert shown == str(missing_body), f"{what}: {body} vs {missing_body}"


def by_id(method: str, template: str, theirs: Callable[[Seeded], list[int]],
          body: dict[str, Any] | None = None, logged_in: int = 404) -> Cell:
    """A route naming one of the other account's ids in its path; `logged_in` is the answer
    to a credential that logs in (403 where a phone's credential is refused whatever the id:
    an account's route)."""

    async def cell(world: World, kind: str) -> None:
        for foreign in theirs(world.theirs):
            status, answer = await world.call(kind, method, template.format(foreign), body)
            missing = await world.call(kind, method, template.format(MISSING), body)
            what = f"{method} {template} as {kind}"
            same_as_missing(status, answer, *missing, foreign, what)
            assert status == (logged_in if kind in LOGS_IN else 401), f"{what}: {status} {answer}"

    return cell


def listing(path: str, ids_of: Callable[[Any], set[int]],
            theirs: Callable[[Seeded], set[int]]) -> Cell:
    """A route that lists or shows the caller's own: never the other account's."""

    async def cell(world: World, kind: str) -> None:
        status, answer = await world.call(kind, "GET", path)
        if kind not in LOGS_IN:
            assert status == 401, f"GET {path} as {kind}: {status}"
            return
        assert status == 200, (path, kind, answer)
        shown = ids_of(answer)
        assert shown, f"GET {path} as {kind} shows nothing: the cell tests nothing"
        assert not shown & theirs(world.theirs), f"GET {path} as {kind} shows {answer}"

    return cell


def creating(method: str, path: str, body: dict[str, Any] | None, ok: int, kinds: set[str],
             headers: Callable[[World], dict[str, str]] | None = None,
             check: Callable[[World, Any], None] | None = None,
             refused: tuple[int, ...] = (401,)) -> Cell:
    """A route that makes something of the caller's own (or changes the caller's own)."""

    async def cell(world: World, kind: str) -> None:
        extra = headers(world) if headers else {}
        status, answer = await world.call(kind, method, path, body, extra)
        if kind not in kinds:
            assert status in refused, f"{method} {path} as {kind}: {status} {answer}"
            return
        assert status == ok, (method, path, kind, answer)
        if check is not None:
            check(world, answer)

    return cell


def public(path: str) -> Cell:
    async def cell(world: World, kind: str) -> None:
        status, answer = await world.call(kind, "GET", path)
        assert status == 200, (path, kind, status)
        for name in (world.mine.username, world.theirs.username):
            assert name not in str(answer), f"GET {path} shows {name}"

    return cell


def _not_their_message(world: World, answer: Any) -> None:
    assert answer["messageId"] != world.theirs.message_id, answer  # their key is not ours


async def device_frames(world: World, kind: str) -> None:
    """The socket: only a password or a phone session logs in; then acks and status reports
    of the other account's message are answered as for a message that does not exist, and
    the phone is never sent the other account's messages."""
    me, them = world.mine, world.theirs
    auth: dict[str, Any] = {"type": "auth"}
    if kind == "body password":
        auth |= {"username": me.username, "password": PASSWORD}
    elif kind == "session token":
        auth["token"] = me.session_token
    elif kind == "api token":
        auth["token"] = me.api_token  # issued for scripts: not a phone's login
    ws = await world.session(kind).ws_connect("/ws/device", headers=world.headers(kind))
    try:
        await ws.send_json(auth)
        first = await ws.receive_json(timeout=5)
        if kind not in ("body password", "session token"):
            assert first == {"type": "auth_failed", "error": "Invalid credentials"}, first
            return
        assert first["type"] == "auth_ok" and first["deviceId"] == me.device_id, first
        await until(lambda: _claimed(world), message="the queue was not sent")
        before = await world.written()
        for frame in ({"type": "ack", "id": "{}"},
                      {"type": "status", "id": "{}", "to": NUMBER, "status": "sent"},
                      {"type": "status", "id": "{}", "to": NUMBER, "status": "failed",
                       "error": "RESULT_ERROR_NO_SERVICE", "attempt": 1}):
            answers = []
            for target in (them.message_id, MISSING):
                await ws.send_json({**frame, "id": target, "ref": "x"})
                answers.append(await _reply(ws, them.message_id))
            same_as_missing(0, answers[0], 0, answers[1], them.message_id,
                            f"{frame['type']} over the socket as {kind}")
        assert await world.written() == before, f"frames as {kind} wrote rows"
    finally:
        await ws.close()
        await until(lambda: _hung_up(world), message="the session stayed")


async def _reply(ws: aiohttp.ClientWebSocketResponse, foreign: int) -> Any:
    while True:
        msg = await ws.receive(timeout=5)
        assert msg.type == WSMsgType.TEXT, msg
        frame = msg.json()
        assert not (frame["type"] == "sms" and frame["id"] == foreign), frame
        if frame["type"] in ("ok", "error"):
            return frame


async def _claimed(world: World) -> bool:
    return not await world.pool.fetchval(
        "SELECT count(*) FROM messages WHERE device_id = $1 AND state = 'queued'",
        world.mine.device_id)


async def _hung_up(world: World) -> bool:
    return not await world.pool.fetchval("SELECT count(*) FROM device_sessions")


def _ids(answer: Any) -> set[int]:
    return {item["id"] for item in answer["data"]}


def _their_tokens(seeded: Seeded) -> list[int]:
    return [seeded.api_token_id, seeded.session_token_id]


ROWS: dict[tuple[str, str], Cell] = {
    ("GET", "/api/health"): public("/api/health"),
    ("GET", "/api/openapi.json"): public("/api/openapi.json"),
    ("POST", "/api/send-sms"): creating(
        "POST", "/api/send-sms", {"phoneNumbers": [NUMBER], "message": "mine"}, 200,
        {"body password", *LOGS_IN},
        headers=lambda w: {"Idempotency-Key": w.theirs.idempotency_key},
        check=_not_their_message, refused=(400, 401)),  # no credentials at all: the seed's 400
    ("GET", "/api/messages"): listing("/api/messages", _ids, lambda s: {s.message_id}),
    ("GET", "/api/messages/{id}"): by_id("GET", "/api/messages/{}", lambda s: [s.message_id]),
    ("DELETE", "/api/messages/{id}"): by_id("DELETE", "/api/messages/{}",
                                            lambda s: [s.message_id]),
    ("POST", "/api/tokens"): creating("POST", "/api/tokens", {"name": "matrix"}, 201, {"basic"}),
    ("GET", "/api/tokens"): listing("/api/tokens", _ids,
                                    lambda s: {s.api_token_id, s.session_token_id}),
    ("DELETE", "/api/tokens/{id}"): by_id("DELETE", "/api/tokens/{}", _their_tokens),
    ("GET", "/api/device"): listing("/api/device", lambda a: {a["id"]}, lambda s: {s.device_id}),
    ("PUT", "/api/device/pacing"): creating("PUT", "/api/device/pacing", {"perMinute": 7},
                                            200, LOGS_IN),
    ("GET", "/api/inbound"): listing("/api/inbound", _ids, lambda s: {s.inbound_id}),
    ("GET", "/api/inbound/{id}"): by_id("GET", "/api/inbound/{}", lambda s: [s.inbound_id]),
    ("POST", "/api/webhooks"): creating(
        "POST", "/api/webhooks", {"url": "https://93.184.216.34/matrix",
                                  "events": ["message.expired"]}, 201, LOGS_IN),
    ("GET", "/api/webhooks"): listing("/api/webhooks", _ids, lambda s: {s.webhook_id or 0}),
    ("GET", "/api/webhooks/{id}"): by_id("GET", "/api/webhooks/{}", lambda s: [s.webhook_id]),
    ("PATCH", "/api/webhooks/{id}"): by_id("PATCH", "/api/webhooks/{}", lambda s: [s.webhook_id],
                                           {"active": False}),
    ("DELETE", "/api/webhooks/{id}"): by_id("DELETE", "/api/webhooks/{}",
                                            lambda s: [s.webhook_id]),
    ("GET", "/api/webhooks/{id}/deliveries"): by_id(
        "GET", "/api/webhooks/{}/deliveries", lambda s: [s.webhook_id]),
    # An account's routes (issue 14): a phone's credential is refused whatever the id.
    ("GET", "/api/devices"): listing("/api/devices", _ids, lambda s: {s.device_id}),
    ("POST", "/api/devices"): creating("POST", "/api/devices", {
        "username": "matrix-phone", "password": PASSWORD}, 201, set(), refused=(401, 403)),
    ("DELETE", "/api/devices/{id}"): by_id("DELETE", "/api/devices/{}", lambda s: [s.device_id],
                                           logged_in=403),
    ("GET", "/api/quota"): creating("GET", "/api/quota", None, 200, LOGS_IN),
    ("GET", "/ws/device"): device_frames,
    ("GET", "/docs"): public("/docs"),
    ("GET", "/metrics"): public("/metrics"),  # aggregate counts only; see docs/security.md
}


def table_routes(hub: TestClient) -> list[tuple[str, str]]:
    """Every (method, path) of the app's route table but the dashboard's (whose cells are
    made from its own table below), HEAD left out (GET answers it)."""
    return sorted({(r.method, r.resource.canonical) for r in hub.app.router.routes()
                   if r.resource is not None and r.method != "HEAD"
                   and not r.resource.canonical.startswith("/dashboard")})


def dashboard_routes(hub: TestClient, world: World) -> list[tuple[str, str]]:
    """Every dashboard route, with the other account's ids filled in."""
    found = []
    for route in hub.app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if not path.startswith("/dashboard") or route.method == "HEAD" or "static" in path:
            continue
        them = world.theirs
        path = path.replace("{id}", str(them.message_id if "/messages" in path
                                        else them.device_id))
        found.append((route.method, path.replace("{token}", str(them.session_token_id))))
    return found


@pytest.fixture
async def world(make_hub: HubFactory, receiver: Receiver,
                pool: asyncpg.Pool) -> AsyncIterator[World]:
    hub = await make_hub(**LOCAL, SMSNODES_LIMITS_SEND_PER_MINUTE="0")
    hook = {"url": receiver.url(), "events": ["sms.received"]}
    mine = await seed_account(hub, "caller-phone", webhook=hook)
    theirs = await seed_account(hub, "other-phone", webhook=hook)
    await until(lambda: pool.fetchval(
        "SELECT count(*) = 2 FROM webhook_deliveries WHERE state = 'delivered'"))
    await add_operator(hub)
    base = str(hub.make_url("")).rstrip("/")
    operator = aiohttp.ClientSession(base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True))
    done = await login(operator, headers={"Origin": base})
    assert done.status == 303, await done.text()
    try:
        yield World(hub, pool, mine, theirs, operator, await marks_query(pool))
    finally:
        await operator.close()


async def test_every_route_has_a_row(world: World) -> None:
    missing = [f"{m} {p}" for m, p in table_routes(world.hub) if (m, p) not in ROWS]
    assert not missing, ("routes without a row in the isolation matrix "
                         f"(tests/test_isolation_matrix.py ROWS): {', '.join(missing)}")
    stale = [f"{m} {p}" for m, p in ROWS if (m, p) not in table_routes(world.hub)]
    assert not stale, f"rows for routes the app no longer has: {', '.join(stale)}"


async def test_no_credential_reaches_another_accounts_data(world: World) -> None:
    failures = []
    for (method, path), cell in ROWS.items():
        for kind in KINDS:
            before_view = await world.their_view()
            before = await world.written()
            world.statuses.clear()
            try:
                await cell(world, kind)
            except AssertionError as exc:
                failures.append(f"{method} {path} as {kind}: {exc}")
                continue
            if await world.their_view() != before_view:
                failures.append(f"{method} {path} as {kind}: changed the other account's data")
            refused = world.statuses and all(status >= 400 for status in world.statuses)
            if refused and await world.written() != before:
                failures.append(f"{method} {path} as {kind}: a refused call wrote rows")
    assert not failures, "\n".join(failures)


async def test_the_dashboard_opens_to_no_phone_or_api_credential(world: World) -> None:
    """Operator-only: Basic, a Bearer token (API or phone session) or a device's password
    in the form open no page, fragment or action, and change nothing."""
    before = await world.written()
    base = str(world.hub.make_url("")).rstrip("/")
    routes = dashboard_routes(world.hub, world)
    assert len(routes) >= 20  # the list really is the router's
    for kind in ("basic", "api token", "session token"):
        for method, path in routes:
            resp = await world.hub.request(method, path, allow_redirects=False,
                                           headers={**world.headers(kind), "Origin": base})
            text = await resp.text()
            if (method, path) in (("GET", "/dashboard/login"), ("POST", "/dashboard/login")):
                assert "smsnodes_session" not in resp.headers.get("Set-Cookie", ""), path
                continue
            assert resp.status in (303, 401), (kind, method, path, resp.status)
            if resp.status == 303:
                assert resp.headers["Location"].startswith("/dashboard/login"), path
            for name in (world.mine.username, world.theirs.username):
                assert name not in text, (kind, path)
    # A device's username and password are no operator's.
    page = await world.hub.get("/dashboard/login")
    token = re.search(r'name="csrf" value="([^"]*)"', await page.text())
    assert token is not None
    resp = await world.hub.post("/dashboard/login", allow_redirects=False, headers={
        "Origin": base}, data={"csrf": token.group(1), "username": world.mine.username,
                               "password": PASSWORD})
    assert resp.status == 401 and "smsnodes_session" not in resp.headers.get("Set-Cookie", "")
    assert await world.written() == before
