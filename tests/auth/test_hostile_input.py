"""Strings PostgreSQL cannot store (a NUL character; unpaired surrogates cannot arrive as
JSON or UTF-8, but the same rule refuses them) never reach a query: a JSON body holding one
is a 400 that changes nothing, a credential holding one is a failed login (401 over HTTP,
4401 on the device socket), and a phone's frame holding one is answered with an `error`
frame on a socket that stays open."""

from __future__ import annotations

import base64
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient

from smsnodes_hub import storable
from smsnodes_hub.appkeys import AUTH, POOL
from tests.api.test_errors import snapshot
from tests.dashboard_support import add_operator, login
from tests.support import NUMBER, PASSWORD, add_device, basic, ws_url
from tests.wsclient import RawPhone

NUL = "\x00"
JSON = {"Content-Type": "application/json"}


def basic_raw(username: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def answer(resp: Any) -> tuple[int, dict[str, Any]]:
    body = await resp.json()
    assert set(body) == {"error", "code"}, body
    return resp.status, body


SEND = {"phoneNumbers": [NUMBER], "message": "hello"}


@pytest.mark.parametrize(("what", "method", "path", "body", "error"), [
    ("deviceUsername", "POST", "/api/send-sms",
     {**SEND, "deviceUsername": f"shop{NUL}phone", "password": PASSWORD},
     "deviceUsername must not contain NUL characters"),
    ("password", "POST", "/api/send-sms",
     {**SEND, "deviceUsername": "shop-phone-1", "password": f"{PASSWORD}{NUL}"},
     "password must not contain NUL characters"),
    ("message", "POST", "/api/send-sms",
     {**SEND, "deviceUsername": "shop-phone-1", "password": PASSWORD, "message": f"a{NUL}b"},
     "message must not contain NUL characters"),
    ("a recipient", "POST", "/api/send-sms",
     {**SEND, "deviceUsername": "shop-phone-1", "password": PASSWORD,
      "phoneNumbers": [NUMBER, f"+1555{NUL}"]},
     "phoneNumbers[1] must not contain NUL characters"),
    ("an unknown field", "POST", "/api/send-sms",
     {**SEND, "deviceUsername": "shop-phone-1", "password": PASSWORD,
      "extra": {"deep": [1, {"x": NUL}]}},
     "extra.deep[1].x must not contain NUL characters"),
    ("a field name", "POST", "/api/send-sms",
     {**SEND, "deviceUsername": "shop-phone-1", "password": PASSWORD, f"x{NUL}": 1},
     "a field name must not contain NUL characters"),
    ("a token name", "POST", "/api/tokens", {"name": f"ci{NUL}"},
     "name must not contain NUL characters"),
    ("a webhook url", "POST", "/api/webhooks",
     {"url": f"https://example.org/{NUL}", "events": ["message.sent"]},
     "url must not contain NUL characters"),
    ("a webhook event", "PATCH", "/api/webhooks/1", {"events": [f"message.sent{NUL}"]},
     "events[0] must not contain NUL characters"),
    ("pacing", "PUT", "/api/device/pacing", {"perMinute": NUL},
     "perMinute must not contain NUL characters"),
])
async def test_a_nul_in_any_json_field_is_a_400_that_changes_nothing(
    hub: TestClient, pool: asyncpg.Pool, what: str, method: str, path: str,
    body: dict[str, Any], error: str,
) -> None:
    await add_device(hub, "shop-phone-1")
    before = await snapshot(pool)
    resp = await hub.request(method, path, data=orjson.dumps(body),
                             headers={**JSON, **basic()})
    assert await answer(resp) == (400, {"error": error, "code": "invalid_request"}), what
    assert await snapshot(pool) == before


@pytest.mark.parametrize(("username", "password"), [
    (f"shop-phone-1{NUL}", PASSWORD),
    (NUL, PASSWORD),
    ("shop-phone-1", f"{PASSWORD}{NUL}"),
])
@pytest.mark.parametrize("path", ["/api/send-sms", "/api/device", "/api/tokens"])
async def test_a_nul_in_basic_credentials_is_invalid_credentials(
    hub: TestClient, username: str, password: str, path: str
) -> None:
    await add_device(hub, "shop-phone-1")
    method = "GET" if path == "/api/device" else "POST"
    resp = await hub.request(method, path, data=orjson.dumps(SEND),
                             headers={**JSON, **basic_raw(username, password)})
    assert await answer(resp) == (401, {"error": "Invalid credentials",
                                        "code": "unauthorized"})


async def test_a_token_that_cannot_be_stored_logs_nobody_in(hub: TestClient) -> None:
    # aiohttp refuses a NUL in a header before the hub sees it; the socket's auth frame and
    # any other caller of the authenticator get the same answer as for a wrong token.
    for kind in ("session", "api"):
        for token in (f"snh_{NUL}", "snh_\ud800"):
            assert await hub.app[AUTH].login_token(hub.app[POOL], token, kind) is None


@pytest.mark.parametrize("frame", [
    {"type": "auth", "username": f"shop-phone-1{NUL}", "password": PASSWORD},
    {"type": "auth", "username": NUL, "password": NUL},
    {"type": "auth", "username": "shop-phone-1", "password": f"{PASSWORD}{NUL}"},
    {"type": "auth", "token": f"snh_{NUL}"},
])
async def test_a_nul_in_the_auth_frame_is_bad_credentials_4401(
    hub: TestClient, frame: dict[str, Any]
) -> None:
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.connect(ws_url(hub))
    await phone.send(frame)
    assert await phone.recv() == {"type": "auth_failed", "error": "Invalid credentials"}
    assert await phone.closed_with() == 4401  # not 1013: the phone must not just retry
    await phone.session.close()


async def test_a_nul_in_the_device_description_is_left_out(
    hub: TestClient, pool: asyncpg.Pool
) -> None:
    device_id = await add_device(hub, "shop-phone-1")
    phone = await RawPhone.connect(ws_url(hub))
    await phone.send({"type": "auth", "username": "shop-phone-1", "password": PASSWORD,
                      "device": {"model": f"Pixel{NUL}", "app": f"1.4{NUL}", "sims": 1}})
    assert (await phone.recv())["type"] == "auth_ok"
    row = await pool.fetchrow("SELECT model, app_version, sims FROM devices WHERE id = $1",
                              device_id)
    assert row is not None and tuple(row) == (None, None, 1)
    await phone.close()


@pytest.mark.parametrize(("frame", "ref"), [
    ({"type": "inbound", "ref": f"sms-{NUL}", "from": "+15550001111", "message": "hi"}, None),
    ({"type": "inbound", "ref": "sms-1", "from": "+15550001111", "message": "hi",
      "extra": NUL}, "sms-1"),
    ({"type": "status", "ref": "r1", "id": 1, "to": NUMBER, "status": "failed",
      "error": f"RESULT_ERROR{NUL}"}, "r1"),
])
async def test_a_nul_in_a_frame_after_auth_is_an_error_frame(
    hub: TestClient, pool: asyncpg.Pool, frame: dict[str, Any], ref: str | None
) -> None:
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    await phone.send(frame)
    reply = await phone.recv_type("error")
    assert reply.get("ref") == ref and "NUL" in reply["error"], reply
    assert await pool.fetchval("SELECT count(*) FROM inbound_messages") == 0
    # The socket stays usable.
    await phone.send({"type": "heartbeat", "ref": "hb", "battery": 50})
    assert await phone.recv_type("ok") == {"type": "ok", "ref": "hb"}
    await phone.close()


@pytest.mark.parametrize(("name", "password"), [
    (f"admin{NUL}", "operator password 1"), ("admin", f"operator password{NUL}")])
async def test_a_nul_in_the_dashboard_login_is_a_wrong_password(
    hub: TestClient, name: str, password: str
) -> None:
    await add_operator(hub, "admin", "operator password 1")
    resp = await login(hub, name, password)
    assert resp.status == 401 and "Wrong username or password" in await resp.text()


def test_the_rule() -> None:
    assert storable.problem("plain text ✓ 😀") is None
    assert storable.problem("a\x00b") == "must not contain NUL characters"
    assert storable.problem("\ud800") == "must not contain unpaired surrogates"
    assert storable.problem("\U0001f600") is None  # a real pair, as Python holds it
    assert storable.first_problem({"a": ["ok", {"b": "\x00"}]}) == (
        "a[1].b", "must not contain NUL characters")
    assert storable.first_problem({"\ud800": 1}) == (None, "must not contain unpaired surrogates")
    deep: Any = "\x00"
    for _ in range(5000):  # deeper than Python's recursion limit: walked without recursion
        deep = [deep]
    assert storable.first_problem(deep) is not None
