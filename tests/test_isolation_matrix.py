"""One account never reaches another's data: every route of the app's route table (and every
frame of the device socket) by every kind of credential (a phone's: body password, Basic, API
token, session token; the dashboard's session; an account's own: Basic with its name and
password, its token) by the other account's ids (its message, inbound SMS, webhook and its
deliveries, API tokens and the account's own, phone session, idempotency key, device, and
its phone's name in a send's `device`).

Every cell that names the other account's id answers exactly as for an id that does not
exist (a 404 for a credential that logs in, not a 403: nothing tells that the id exists) and
writes no row; every cell leaves the other account's data as its owner sees it; lists and
the caller's own resources never show the other account's. The dashboard is the operator's:
no phone or API credential opens any of its routes. A route of the table without a row here
fails the test, which names it."""

from __future__ import annotations

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
from tests.support import NUMBER, PASSWORD, HubFactory, Seeded, basic, seed_account, until
from tests.webhooks.receiver import LOCAL, Receiver

KINDS = ("body password", "basic", "api token", "session token", "dashboard session",
         "account basic", "account token")
PHONE_LOGINS = {"basic", "api token"}  # a phone's credentials that authenticate an /api call
ACCOUNT_LOGINS = {"account basic", "account token"}  # an account's own (not a phone's)
# What authenticates an /api call (and the body password, on send-sms).
LOGS_IN = PHONE_LOGINS | ACCOUNT_LOGINS
MISSING = 987_654_321  # an id nobody has
MISSING_NAME = "no-such-phone"  # a phone name nobody has
SMS = {"phoneNumbers": [NUMBER], "message": "mine"}
PUBLIC = {("GET", "/api/health"), ("GET", "/api/openapi.json"), ("GET", "/docs"),
          ("GET", "/metrics")}


@dataclass
class World:
    hub: TestClient
    pool: asyncpg.Pool
    mine: Seeded  # the caller: a device account (its phone's credentials)
    owner: Seeded  # the caller as an account of its own (account add, device add --account)
    theirs: Seeded  # the other account: either kind (the `world` fixture's parameter)
    operator: aiohttp.ClientSession  # logged in to the dashboard, and nothing else
    marks: str
    statuses: list[int] = field(default_factory=list)  # of the calls of the current cell

    def session(self, kind: str) -> Any:
        return self.operator if kind == "dashboard session" else self.hub

    def caller(self, kind: str) -> Seeded:
        return self.owner if kind in ACCOUNT_LOGINS else self.mine

    def headers(self, kind: str) -> dict[str, str]:
        me = self.caller(kind)
        if kind in ("basic", "account basic"):
            return basic(me.username)
        token = {"api token": me.api_token, "session token": me.session_token,
                 "account token": me.account_token}.get(kind)
        return {"Authorization": f"Bearer {token}"} if token else {}

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

    def names(self) -> list[str]:
        """Every account's and phone's name: what no public page or refusal may show."""
        return [name for seeded in (self.mine, self.owner, self.theirs)
                for name in (seeded.username, seeded.phone) if name]

    async def written(self) -> dict[str, str]:
        row = await self.pool.fetchrow(self.marks)
        assert row is not None
        return dict(row)

    async def their_view(self) -> Any:
        """Everything the other account sees of its own data, through its own password
        and its account's token."""
        auth = self.theirs.auth()
        account = {"Authorization": f"Bearer {self.theirs.account_token}"}
        seen = []
        for path, headers in (
                ("/api/messages", auth), ("/api/inbound", auth), ("/api/webhooks", auth),
                ("/api/tokens", auth), ("/api/device", auth),
                (f"/api/messages/{self.theirs.message_id}", auth),
                (f"/api/webhooks/{self.theirs.webhook_id}/deliveries", auth),
                # As the account: every token of it, its phones, its quota.
                ("/api/tokens", account), ("/api/devices", account), ("/api/quota", account)):
            resp = await self.hub.get(path, headers=headers)
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
                    foreign: int | str, what: str, missing: int | str = MISSING) -> None:
    """The answer to another account's id (or name) is the answer to one that does not
    exist."""
    assert status == missing_status, f"{what}: {status} {body} (missing id: {missing_status})"
    shown = re.sub(rf"\b{re.escape(str(foreign))}\b", str(missing), str(body))
    assert shown == str(missing_body), f"{what}: {body} vs {missing_body}"


def by_id(method: str, template: str, theirs: Callable[[Seeded], list[int]],
          body: dict[str, Any] | None = None, logged_in: int = 404) -> Cell:
    """A route naming one of the other account's ids in its path; `logged_in` is the answer
    to a phone's credential that logs in (403 where a phone's credential is refused whatever
    the id: an account's route). An account's own credentials are taken by every such route,
    and answered 404."""

    async def cell(world: World, kind: str) -> None:
        for foreign in theirs(world.theirs):
            status, answer = await world.call(kind, method, template.format(foreign), body)
            missing = await world.call(kind, method, template.format(MISSING), body)
            what = f"{method} {template} as {kind}"
            same_as_missing(status, answer, *missing, foreign, what)
            expected = (401 if kind not in LOGS_IN else 404 if kind in ACCOUNT_LOGINS
                        else logged_in)
            assert status == expected, f"{what}: {status} {answer}"

    return cell


def listing(path: str, ids_of: Callable[[Any], set[int]],
            theirs: Callable[[Seeded], set[int]], accounts: int = 200) -> Cell:
    """A route that lists or shows the caller's own: never the other account's. `accounts`
    is the answer to an account's own credentials (403: a route about one phone)."""

    async def cell(world: World, kind: str) -> None:
        status, answer = await world.call(kind, "GET", path)
        if kind not in LOGS_IN:
            assert status == 401, f"GET {path} as {kind}: {status}"
            return
        if kind in ACCOUNT_LOGINS and accounts != 200:
            assert status == accounts, f"GET {path} as {kind}: {status} {answer}"
            return
        assert status == 200, (path, kind, answer)
        shown = ids_of(answer)
        assert shown, f"GET {path} as {kind} shows nothing: the cell tests nothing"
        assert not shown & theirs(world.theirs), f"GET {path} as {kind} shows {answer}"

    return cell


def creating(method: str, path: str, body: dict[str, Any] | Callable[[str], dict[str, Any]]
             | None, ok: int, kinds: set[str],
             check: Callable[[World, Any], None] | None = None,
             refused: tuple[int, ...] = (401,), forbidden: frozenset[str] = frozenset()) -> Cell:
    """A route that makes something of the caller's own (or changes the caller's own), as
    the `kinds` of credentials; `forbidden` kinds log in but are refused whatever the body
    (403), the others are `refused`. `body` may depend on the kind (names that must be
    new)."""

    async def cell(world: World, kind: str) -> None:
        status, answer = await world.call(kind, method, path,
                                          body(kind) if callable(body) else body)
        if kind in forbidden:
            assert status == 403, f"{method} {path} as {kind}: {status} {answer}"
            return
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
        for name in world.names():
            assert name not in str(answer), f"GET {path} shows {name}"

    return cell


async def sending(world: World, kind: str) -> None:
    """send-sms stores a message of the caller's own, even with the other account's
    Idempotency-Key; naming the other account's phone in `device` is answered as a phone
    nobody has (a phone's credentials may name only that phone, the account's only its own
    phones) and stores nothing."""
    status, answer = await world.call(kind, "POST", "/api/send-sms", SMS,
                                      {"Idempotency-Key": world.theirs.idempotency_key})
    if kind not in {"body password", *LOGS_IN}:
        assert status in (400, 401), f"send-sms as {kind}: {status} {answer}"  # no credentials
        return  # at all: the seed's 400
    assert status == 200, (kind, answer)
    assert answer["messageId"] != world.theirs.message_id, answer  # their key is not ours
    before = await world.written()
    foreign = world.theirs.phone or world.theirs.username
    pinned = await world.call(kind, "POST", "/api/send-sms", {**SMS, "device": foreign})
    missing = await world.call(kind, "POST", "/api/send-sms", {**SMS, "device": MISSING_NAME})
    same_as_missing(*pinned, *missing, foreign, f"send-sms to their phone as {kind}",
                    MISSING_NAME)
    assert pinned[0] == 400, (kind, pinned)
    assert await world.written() == before, f"a send to their phone as {kind} wrote rows"


async def device_frames(world: World, kind: str) -> None:
    """The socket: only a password or a phone session logs in; then acks and status reports
    of the other account's message are answered as for a message that does not exist, and
    the phone is never sent the other account's messages."""
    me, them = world.caller(kind), world.theirs
    auth: dict[str, Any] = {"type": "auth"}
    if kind in ("body password", "account basic"):  # an account's own: no phone's login
        auth |= {"username": me.username, "password": PASSWORD}
    elif kind == "session token":
        auth["token"] = me.session_token
    elif kind in ("api token", "account token"):
        # Issued for scripts: not a phone's login.
        auth["token"] = me.api_token if kind == "api token" else me.account_token
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
    return [seeded.api_token_id, seeded.session_token_id, seeded.account_token_id]


def _new_phone(kind: str) -> dict[str, Any]:
    return {"username": f"matrix-{kind.replace(' ', '-')}", "password": PASSWORD}


ROWS: dict[tuple[str, str], Cell] = {
    ("GET", "/api/health"): public("/api/health"),
    ("GET", "/api/openapi.json"): public("/api/openapi.json"),
    ("POST", "/api/send-sms"): sending,
    ("GET", "/api/messages"): listing("/api/messages", _ids, lambda s: {s.message_id}),
    ("GET", "/api/messages/{id}"): by_id("GET", "/api/messages/{}", lambda s: [s.message_id]),
    ("DELETE", "/api/messages/{id}"): by_id("DELETE", "/api/messages/{}",
                                            lambda s: [s.message_id]),
    ("POST", "/api/tokens"): creating("POST", "/api/tokens", {"name": "matrix"}, 201,
                                      {"basic", "account basic"}),  # needs the password
    ("GET", "/api/tokens"): listing("/api/tokens", _ids, lambda s: set(_their_tokens(s))),
    ("DELETE", "/api/tokens/{id}"): by_id("DELETE", "/api/tokens/{}", _their_tokens),
    # A phone's own routes: the account's credentials name no phone (403, whatever the id).
    ("GET", "/api/device"): listing("/api/device", lambda a: {a["id"]}, lambda s: {s.device_id},
                                    accounts=403),
    ("PUT", "/api/device/pacing"): creating("PUT", "/api/device/pacing", {"perMinute": 7},
                                            200, PHONE_LOGINS,
                                            forbidden=frozenset(ACCOUNT_LOGINS)),
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
    ("POST", "/api/devices"): creating("POST", "/api/devices", _new_phone, 201, ACCOUNT_LOGINS,
                                       forbidden=frozenset(PHONE_LOGINS)),
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


@pytest.fixture(params=["device account", "account of its own"])
async def world(request: pytest.FixtureRequest, make_hub: HubFactory, receiver: Receiver,
                pool: asyncpg.Pool) -> AsyncIterator[World]:
    """The caller as a device account and as an account of its own, and the other account
    as either (a device account whose phone shares its name, or `account add` with a
    phone)."""
    hub = await make_hub(**LOCAL, SMSNODES_LIMITS_SEND_PER_MINUTE="0")
    hook = {"url": receiver.url(), "events": ["sms.received"]}
    mine = await seed_account(hub, "caller-phone", webhook=hook)
    owner = await seed_account(hub, "caller-account", webhook=hook, phone="caller-account-1")
    if request.param == "device account":
        theirs = await seed_account(hub, "other-phone", webhook=hook)
    else:
        theirs = await seed_account(hub, "other-account", webhook=hook, phone="other-account-1")
    await until(lambda: pool.fetchval(
        "SELECT count(*) = 3 FROM webhook_deliveries WHERE state = 'delivered'"))
    await add_operator(hub)
    base = str(hub.make_url("")).rstrip("/")
    operator = aiohttp.ClientSession(base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True))
    done = await login(operator, headers={"Origin": base})
    assert done.status == 303, await done.text()
    try:
        yield World(hub, pool, mine, owner, theirs, operator, await marks_query(pool))
    finally:
        await operator.close()


async def test_every_route_has_a_row(make_hub: HubFactory) -> None:
    hub = await make_hub()
    missing = [f"{m} {p}" for m, p in table_routes(hub) if (m, p) not in ROWS]
    assert not missing, ("routes without a row in the isolation matrix "
                         f"(tests/test_isolation_matrix.py ROWS): {', '.join(missing)}")
    stale = [f"{m} {p}" for m, p in ROWS if (m, p) not in table_routes(hub)]
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
    for kind in ("basic", "api token", "session token", *sorted(ACCOUNT_LOGINS)):
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
            for name in world.names():
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
