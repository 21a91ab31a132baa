"""The dashboard's handlers on a real hub: sessions, CSRF, login throttling, logout, the
pages' content and the operators' actions on real (simulated) phones."""

from __future__ import annotations

import asyncio
import re
import stat
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp import TCPConnector
from aiohttp.test_utils import TestClient, TestServer
from device_sim import PhoneBehaviour, SimulatedPhone
from yarl import URL

from smsnodes_hub.app import create_app
from smsnodes_hub.appkeys import HUB, POOL
from smsnodes_hub.config import ConfigError
from smsnodes_hub.dashboard import SUBAPP, redact_numbers, scrub_urls, webhook_target
from smsnodes_hub.dashboard.auth import DashboardKeyError, load_key_file, origin_of
from smsnodes_hub.dashboard.chart import nice_ceiling, throughput_chart
from tests.dashboard_support import (
    OPERATOR,
    OPERATOR_PASSWORD,
    HubFactory,
    add_operator,
    add_webhook_rows,
    element,
    hidden,
    logged_in,
    login,
    origin,
    reverse_proxy,
    self_signed,
)
from tests.support import PASSWORD, add_device, basic, send, test_settings, ws_url

SECRET = "a shared dashboard signing secret, 32+ chars"





def route_paths(client: TestClient, device_id: int, message_id: int) -> list[tuple[str, str]]:
    """Every (method, path) the dashboard serves, with real ids filled in."""
    found = []
    for route in client.app[SUBAPP].router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource else {}
        template = info.get("formatter") or info.get("path") or info.get("prefix", "")
        if "static" in template:
            continue
        path = template.replace("{id}", str(message_id if "/messages" in template else device_id))
        found.append((route.method, path.replace("{token}", "1")))
    return found


async def test_no_page_fragment_or_action_answers_without_a_session(hub: TestClient) -> None:
    device_id = await add_device(hub, "shop-phone-1")
    message_id = (await send(hub))["messageId"]
    routes = route_paths(hub, device_id, message_id)
    assert len(routes) >= 20  # the list really is the router's
    public = {("GET", "/dashboard/login"), ("POST", "/dashboard/login")}
    # No cookie, then a cookie this hub never signed: both are strangers.
    for cookie in (None, "smsnodes_session=" + "A" * 43 + "." + "B" * 43):
        headers = {"Cookie": cookie} if cookie else {}
        for method, path in routes:
            if (method, path) in public:
                continue
            resp = await hub.request(method, path, headers={**headers, **origin(hub)},
                                     allow_redirects=False)
            body = await resp.text()
            if "/fragments/" in path:
                assert resp.status == 401, (method, path, resp.status)
            else:
                assert resp.status == 303, (method, path, resp.status)
                assert resp.headers["Location"].startswith("/dashboard/login"), path
            assert "shop-phone-1" not in body, path
            assert resp.headers["Cache-Control"] == "no-store"
    # Nothing any action would have done happened.
    row = await hub.app[POOL].fetchrow(
        "SELECT state, (SELECT pace_per_minute FROM devices WHERE id = $2) AS pace "
        "FROM messages WHERE id = $1", message_id, device_id)
    assert row["state"] == "queued" and row["pace"] is None

    # The same routes do answer once logged in (so the loop above tested real pages).
    await logged_in(hub)
    for method, path in routes:
        if method == "GET" and path != "/dashboard/login":
            resp = await hub.get(path, allow_redirects=False)
            assert resp.status == 200, (path, resp.status)


async def test_login_redirects_back_and_never_off_site(hub: TestClient) -> None:
    await add_operator(hub)
    resp = await hub.get("/dashboard/messages?status=queued", allow_redirects=False)
    location = URL(resp.headers["Location"])
    assert location.path == "/dashboard/login"
    assert location.query["next"] == "/dashboard/messages?status=queued"
    page = await hub.get(resp.headers["Location"])
    assert 'name="next" value="/dashboard/messages?status=queued"' in await page.text()
    done = await login(hub, next="/dashboard/messages?status=queued")
    assert done.headers["Location"] == "/dashboard/messages?status=queued"
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "/api/health"):
        hub.session.cookie_jar.clear()
        done = await login(hub, next=evil)
        assert done.status == 303 and done.headers["Location"] == "/dashboard", evil


async def test_session_cookie_is_httponly_strict_and_lasts_the_configured_time(
    make_hub: Any,
) -> None:
    hub = await make_hub(SMSNODES_DASHBOARD_SESSION_LIFETIME_HOURS="2")
    await add_operator(hub)
    resp = await login(hub)
    assert resp.status == 303
    cookie = next(c for c in resp.headers.getall("Set-Cookie")
                  if c.startswith("smsnodes_session="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "SameSite=Strict" in cookie and "Max-Age=7200" in cookie and "Path=/" in cookie
    assert "secure" not in attributes  # plain HTTP here; see the TLS case below
    expires = await hub.app[POOL].fetchval(
        "SELECT expires_at - created_at FROM operator_sessions")
    assert expires.total_seconds() == pytest.approx(7200, abs=5)
    # The database holds the hash of the cookie's id, never the id.
    raw = cookie.split("=", 1)[1].split(";")[0].split(".")[0]
    stored = await hub.app[POOL].fetchval("SELECT id_hash FROM operator_sessions")
    assert raw.encode() not in stored and len(stored) == 32


async def test_over_tls_the_login_and_session_cookies_are_secure(
    database_url: str, aiohttp_client: Any, tmp_path: Path,
) -> None:
    # The hub serving TLS itself (server.tls_cert), on a real TLS socket.
    cert = self_signed(tmp_path / "tls")
    settings = test_settings(database_url, SMSNODES_SERVER_TLS_CERT=str(cert.cert),
                             SMSNODES_SERVER_TLS_KEY=str(cert.key),
                             SMSNODES_DATABASE_DATA_DIR=str(tmp_path / "data"))
    server = TestServer(create_app(settings, database_url, migrate=False), host="127.0.0.1")
    await server.start_server(ssl=cert.server_context())
    hub = await aiohttp_client(server, connector=TCPConnector(ssl=cert.client_context()))
    assert str(hub.make_url("")).startswith("https://")
    await add_operator(hub)

    form = await hub.get("/dashboard/login")
    login_cookie = _set_cookie(form, "__Secure-smsnodes_login")
    assert {"secure", "httponly", "samesite=strict", "path=/dashboard/login"} <= login_cookie
    resp = await login(hub)
    assert resp.status == 303, await resp.text()
    session = _set_cookie(resp, "__Host-smsnodes_session")
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= session
    assert not any(flag.startswith("domain") for flag in session)  # __Host-: this host only
    assert not any(c.startswith("smsnodes_session=") for c in resp.headers.getall("Set-Cookie"))
    # The browser sends it back over TLS, and that is a live session.
    page = await hub.get("/dashboard", allow_redirects=False)
    assert page.status == 200 and "Log out" in await page.text()
    csrf = hidden(await page.text())
    resp = await hub.post("/dashboard/logout", data={"csrf": csrf}, headers=origin(hub),
                          allow_redirects=False)
    assert "secure" in _set_cookie(resp, "__Host-smsnodes_session")  # cleared the same way
    assert (await hub.get("/dashboard", allow_redirects=False)).status == 303


def _set_cookie(resp: Any, name: str) -> set[str]:
    """The attributes of the Set-Cookie header for `name`, lower case, without the value."""
    for header in resp.headers.getall("Set-Cookie", []):
        if header.startswith(f"{name}="):
            return {part.strip().lower() for part in header.split(";")[1:]}
    raise AssertionError(f"no Set-Cookie for {name}: {resp.headers.getall('Set-Cookie', [])}")


async def test_forms_need_the_csrf_token_and_the_same_origin(hub: TestClient) -> None:
    device_id = await add_device(hub, "shop-phone-1")
    csrf = await logged_in(hub)
    path = f"/dashboard/devices/{device_id}/pacing"

    async def post(data: dict[str, str], headers: dict[str, str]) -> Any:
        return await hub.post(path, data=data, headers=headers, allow_redirects=False)

    async def pace() -> Any:
        return await hub.app[POOL].fetchval(
            "SELECT pace_per_minute FROM devices WHERE id = $1", device_id)

    same = origin(hub)
    refused = [
        ({"per_minute": "5"}, same),                                   # no token
        ({"per_minute": "5", "csrf": "forged"}, same),                 # a wrong token
        ({"per_minute": "5", "csrf": csrf[:-1] + "x"}, same),          # nearly right
        ({"per_minute": "5", "csrf": csrf}, {}),                       # no Origin, no Referer
        ({"per_minute": "5", "csrf": csrf}, {"Origin": "https://evil.example"}),
        ({"per_minute": "5", "csrf": csrf}, {"Origin": "null"}),
        ({"per_minute": "5", "csrf": csrf}, {"Referer": "https://evil.example/dashboard"}),
    ]
    for data, headers in refused:
        resp = await post(data, headers)
        assert resp.status == 403, (data, headers)
        assert await pace() is None
    # A Referer of this host is enough when a browser sends no Origin.
    resp = await post({"per_minute": "5", "csrf": csrf},
                      {"Referer": str(hub.make_url(f"/dashboard/devices/{device_id}"))})
    assert resp.status == 303 and await pace() == 5

    # The login form has its own token, tied to its own cookie.
    hub.session.cookie_jar.clear()
    resp = await hub.post("/dashboard/login", headers=same, allow_redirects=False,
                          data={"username": OPERATOR, "password": OPERATOR_PASSWORD})
    assert resp.status == 403
    resp = await hub.post("/dashboard/login", headers=same, allow_redirects=False,
                          data={"username": OPERATOR, "password": OPERATOR_PASSWORD,
                                "csrf": csrf})
    assert resp.status == 403
    assert await hub.app[POOL].fetchval("SELECT count(*) FROM operator_sessions") == 1


def post_paths(client: TestClient, ids: dict[str, int]) -> list[str]:
    """Every POST path of the dashboard's router, with real ids filled in."""
    found = []
    for route in client.app[SUBAPP].router.routes():
        if route.method != "POST":
            continue
        info = route.resource.get_info() if route.resource else {}
        template = info.get("formatter") or info.get("path", "")
        kind = "message" if "/messages/" in template else "device"
        found.append(template.replace("{id}", str(ids[kind])).replace("{token}",
                                                                        str(ids["token"])))
    return found


async def test_every_post_refuses_a_missing_or_wrong_csrf_token_and_does_nothing(
    hub: TestClient,
) -> None:
    device_id = await add_device(hub, "shop-phone-1")
    csrf = await logged_in(hub)
    created = await hub.post("/api/tokens", json={"name": "billing"}, headers=basic())
    token_id = (await created.json())["id"]
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    resp = await hub.post("/api/send-sms", headers=basic(), json={
        "phoneNumbers": ["+15550000001"], "message": "later", "scheduledAt": later})
    message_id = (await resp.json())["messageId"]  # cancellable, and not sent meanwhile
    paths = post_paths(hub, {"device": device_id, "message": message_id, "token": token_id})
    expected = {"/dashboard/login", "/dashboard/logout", f"/dashboard/messages/{message_id}/cancel",
                *(f"/dashboard/devices/{device_id}/{a}" for a in
                  ("disconnect", "end-sessions", "pacing", f"tokens/{token_id}/revoke"))}
    assert expected <= set(paths), paths  # the walk found the real routes

    pool = hub.app[POOL]

    async def snapshot() -> tuple[Any, ...]:
        row = await pool.fetchrow(
            """SELECT (SELECT pace_per_minute FROM devices WHERE id = $1) AS pace,
                      (SELECT count(*) FROM tokens WHERE id = $3) AS api_token,
                      (SELECT message_status(m.state, ARRAY(SELECT r.state FROM recipients r
                                                            WHERE r.message_id = m.id))
                         FROM messages m WHERE m.id = $2) AS status,
                      (SELECT count(*) FROM operator_sessions) AS sessions""",
            device_id, message_id, token_id)
        return (*row.values(), phone.close_codes[:], phone.auth_count)

    behaviour = PhoneBehaviour(backoff_initial=0.05, backoff_max=0.1)
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD, behaviour) as phone:
        before = await snapshot()
        assert before[:4] == (None, 1, "scheduled", 1)
        same = origin(hub)
        refused = [
            ({}, same),                                              # no token
            ({"csrf": "forged"}, same),                              # a wrong token
            ({"csrf": csrf[:-2] + ("AA" if csrf[-2:] != "AA" else "BB")}, same),  # nearly
            ({"csrf": csrf}, {"Origin": "https://evil.example"}),    # right token, other site
        ]
        for path in paths:
            for data, headers in refused:
                resp = await hub.post(path, data={"per_minute": "7", **data}, headers=headers,
                                      allow_redirects=False)
                assert resp.status == 403, (path, data, headers, resp.status)
                assert "shop-phone-1" not in await resp.text()
            await asyncio.sleep(0.05)  # a disconnect, had it happened, reaches the phone
            assert await snapshot() == before, path
        # The session survived all of that: the refusals were the guard's, not a logout.
        assert (await hub.get("/dashboard", allow_redirects=False)).status == 200

        # With the right token the same routes act (so the loop above tested real actions).
        acted = [p for p in paths if p != "/dashboard/login"]
        acted.sort(key=lambda p: p.endswith("/logout"))  # logging out last
        for path in acted:
            resp = await hub.post(path, data={"per_minute": "7", "csrf": csrf}, headers=same,
                                  allow_redirects=False)
            assert resp.status == 303, (path, resp.status)
        after = await snapshot()
        assert after[:4] == (7, 0, "cancelled", 0)
        await phone.wait_for(lambda: 1000 in phone.close_codes and 4401 in phone.close_codes)


async def test_an_expired_session_is_refused(hub: TestClient) -> None:
    device_id = await add_device(hub, "shop-phone-1")
    csrf = await logged_in(hub)
    pool = hub.app[POOL]
    await pool.execute("UPDATE operator_sessions SET expires_at = now() - interval '1 second'")
    resp = await hub.get("/dashboard/devices", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"].startswith("/dashboard/login?next=")
    assert (await hub.get("/dashboard/fragments/devices")).status == 401
    resp = await hub.post(f"/dashboard/devices/{device_id}/pacing",
                          data={"per_minute": "5", "csrf": csrf}, headers=origin(hub),
                          allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/dashboard/login"
    assert await pool.fetchval("SELECT pace_per_minute FROM devices") is None
    # The login form shows, and a new login works (and sweeps the expired row).
    page = await hub.get("/dashboard/login")
    assert "Log in to the dashboard" in await page.text()
    assert (await login(hub)).status == 303
    assert await pool.fetchval("SELECT count(*) FROM operator_sessions") == 1


# -- Behind a reverse proxy -----------------------------------------------------------------


async def _behind_proxy(make_hub: HubFactory, aiohttp_client: Any, tmp_path: Path, *,
                        pass_host: bool, **env: str) -> tuple[TestClient, TestClient]:
    """A hub on plain HTTP behind a TLS-terminating proxy; returns (hub, browser), where
    the browser talks to the proxy only. Adds the operator unless the database has one."""
    hub = await make_hub(**env)
    cert = self_signed(tmp_path / "tls")
    proxy = TestServer(reverse_proxy(hub.make_url(""), pass_host=pass_host), host="127.0.0.1")
    await proxy.start_server(ssl=cert.server_context())
    browser = await aiohttp_client(proxy, connector=TCPConnector(ssl=cert.client_context()))
    if not await hub.app[POOL].fetchval("SELECT count(*) FROM operators"):
        await add_operator(hub)
    return hub, browser


async def test_behind_a_proxy_that_passes_host_forms_work(
    make_hub: HubFactory, aiohttp_client: Any, tmp_path: Path,
) -> None:
    hub, browser = await _behind_proxy(make_hub, aiohttp_client, tmp_path, pass_host=True)
    device_id = await add_device(hub, "shop-phone-1")
    resp = await login(browser)  # Origin: the proxy's https:// address
    assert resp.status == 303, await resp.text()
    page = await browser.get(f"/dashboard/devices/{device_id}")
    csrf = hidden(await page.text())
    resp = await browser.post(f"/dashboard/devices/{device_id}/pacing",
                              data={"per_minute": "9", "csrf": csrf}, headers=origin(browser),
                              allow_redirects=False)
    assert resp.status == 303
    assert await hub.app[POOL].fetchval("SELECT pace_per_minute FROM devices") == 9


async def test_behind_a_proxy_that_hides_host_public_origin_makes_forms_work(
    make_hub: HubFactory, aiohttp_client: Any, tmp_path: Path,
) -> None:
    # nginx's default: Host names the upstream (127.0.0.1:port), not the browser's address,
    # so comparing Origin with Host refuses every form, the login first.
    hub, browser = await _behind_proxy(make_hub, aiohttp_client, tmp_path / "a",
                                       pass_host=False)
    resp = await login(browser)
    assert resp.status == 403
    assert "not sent from a page of this dashboard" in await resp.text()
    assert await hub.app[POOL].fetchval("SELECT count(*) FROM operator_sessions") == 0

    # dashboard.public_origin names what the browser uses: the login works, the cookies are
    # Secure because that origin is https://, and only that origin may post.
    public = {"Origin": "https://sms.example.org"}
    hub, browser = await _behind_proxy(make_hub, aiohttp_client, tmp_path / "b",
                                       pass_host=False,
                                       SMSNODES_DASHBOARD_PUBLIC_ORIGIN="https://sms.example.org")
    device_id = await add_device(hub, "shop-phone-1")
    form = await browser.get("/dashboard/login")
    assert "secure" in _set_cookie(form, "__Secure-smsnodes_login")
    resp = await login(browser, headers=public)
    assert resp.status == 303, await resp.text()
    assert {"secure", "httponly", "samesite=strict"} <= _set_cookie(resp,
                                                                     "__Host-smsnodes_session")
    csrf = hidden(await (await browser.get(f"/dashboard/devices/{device_id}")).text())
    path = f"/dashboard/devices/{device_id}/pacing"
    for other in (origin(browser), origin(hub), {"Origin": "http://sms.example.org"},
                  {"Referer": "https://sms.example.org.evil.example/dashboard"}):
        resp = await browser.post(path, data={"per_minute": "9", "csrf": csrf},
                                  headers=other, allow_redirects=False)
        assert resp.status == 403, other
    assert await hub.app[POOL].fetchval("SELECT pace_per_minute FROM devices") is None
    for accepted, pace in (({"Origin": "https://SMS.example.org:443"}, "9"),
                           ({"Referer": "https://sms.example.org/dashboard/devices"}, "4")):
        resp = await browser.post(path, data={"per_minute": pace, "csrf": csrf},
                                  headers=accepted, allow_redirects=False)
        assert resp.status == 303, accepted
        assert await hub.app[POOL].fetchval("SELECT pace_per_minute FROM devices") == int(pace)


async def test_public_origin_names_the_docs_examples_and_must_be_an_origin(
    make_hub: HubFactory, database_url: str,
) -> None:
    hub = await make_hub(SMSNODES_DASHBOARD_PUBLIC_ORIGIN="https://sms.example.org/")
    page = await (await hub.get("/docs")).text()
    assert "https://sms.example.org/api/send-sms" in page
    assert "wss://sms.example.org/ws/device" in page
    assert f"127.0.0.1:{hub.port}" not in page
    for bad in ("sms.example.org", "https://sms.example.org/dashboard", "ftp://sms.example.org",
                "https://user@sms.example.org", "https://sms.example.org:99999"):
        with pytest.raises(ConfigError, match=r"dashboard\.public_origin"):
            test_settings(database_url, SMSNODES_DASHBOARD_PUBLIC_ORIGIN=bad)


async def test_login_throttling_has_its_own_lockout(make_hub: Any) -> None:
    hub = await make_hub(SMSNODES_SECURITY_LOGIN_MAX_FAILURES="3",
                         SMSNODES_SECURITY_LOGIN_LOCKOUT_SECONDS="1")
    await add_operator(hub)
    await add_device(hub, "shop-phone-1")
    for _ in range(3):
        resp = await login(hub, password="not the password")
        assert resp.status == 401
        assert "Wrong username or password" in await resp.text()
    resp = await login(hub)  # the right password, but locked out
    assert resp.status == 429 and resp.headers["Retry-After"] == "1"
    assert "Too many failed logins" in await resp.text()
    assert await hub.app[POOL].fetchval("SELECT count(*) FROM operator_sessions") == 0
    # The phones' throttle is another one: the device API still logs in from here.
    assert (await hub.get("/api/device", headers=basic())).status == 200
    await asyncio.sleep(1.1)
    resp = await login(hub)
    assert resp.status == 303
    # An unknown operator is refused like a wrong password.
    hub.session.cookie_jar.clear()
    resp = await login(hub, name="nobody-here")
    assert resp.status == 401


async def test_logout_ends_the_session_in_every_hub_process(make_hub: Any) -> None:
    first = await make_hub(SMSNODES_DASHBOARD_SESSION_SECRET=SECRET)
    second = await make_hub(SMSNODES_DASHBOARD_SESSION_SECRET=SECRET)
    await add_operator(first)
    resp = await login(first)
    cookie = resp.cookies["smsnodes_session"].value
    header = {"Cookie": f"smsnodes_session={cookie}"}
    # The session works on the other process too (same database, same secret).
    assert (await second.get("/dashboard", headers=header, allow_redirects=False)).status == 200
    csrf = hidden(await (await first.get("/dashboard")).text())
    resp = await first.post("/dashboard/logout", data={"csrf": csrf}, headers=origin(first),
                            allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/dashboard/login?bye=1"
    assert resp.cookies["smsnodes_session"].value == ""  # the browser drops it
    page = await first.get(resp.headers["Location"])
    assert "You are logged out" in await page.text()
    # The old cookie, replayed, opens nothing anywhere.
    for client in (first, second):
        resp = await client.get("/dashboard", headers=header, allow_redirects=False)
        assert resp.status == 303
        resp = await client.get("/dashboard/fragments/overview", headers=header)
        assert resp.status == 401


async def test_the_key_file_is_made_on_first_use_0600_and_shared(
    make_hub: Any, tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    first = await make_hub(SMSNODES_DATABASE_DATA_DIR=str(data_dir))
    key_file = data_dir / "dashboard-session.key"
    assert (await first.get("/docs")).status == 200
    assert not key_file.exists()  # not at start, nor for pages that sign nothing
    assert (await first.get("/dashboard/login")).status == 200
    assert key_file.exists()  # the login form's token needs it
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    await add_operator(first)
    cookie = (await login(first)).cookies["smsnodes_session"].value
    second = await make_hub(SMSNODES_DATABASE_DATA_DIR=str(data_dir))
    resp = await second.get("/dashboard", headers={"Cookie": f"smsnodes_session={cookie}"},
                            allow_redirects=False)
    assert resp.status == 200
    # Another key (a hub with another folder) does not accept it.
    other = await make_hub(SMSNODES_DATABASE_DATA_DIR=str(tmp_path / "elsewhere"))
    resp = await other.get("/dashboard", headers={"Cookie": f"smsnodes_session={cookie}"},
                           allow_redirects=False)
    assert resp.status == 303

    key_file.write_text("not hex\n")
    with pytest.raises(DashboardKeyError, match="64 hex digits"):
        load_key_file(key_file)


async def test_overview_counts_phones_queues_and_webhook_failures(hub: TestClient) -> None:
    device_id = await add_device(hub, "shop-phone-1")
    await add_device(hub, "back-office")
    csrf = await logged_in(hub)
    assert csrf
    for priority in (5, 5, 2):
        await send(hub, priority=priority)
    await add_webhook_rows(hub, device_id)
    html = await (await hub.get("/dashboard/fragments/overview")).text()
    assert _text(html, "phones-online").startswith("0")
    assert _text(html, "queued-total") == "3"
    # Each of the four deliveries failed once; two were given up.
    assert _text(html, "webhook-failed-attempts") == "4"
    assert _text(html, "webhook-given-up") == "2"
    queue = re.search(r"5 \(highest\)</th><td class=\"num\">(\d+)</td>", html)
    assert queue and queue.group(1) == "2"
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        await phone.wait_for(lambda: len(phone.reports) == 6 and phone.outbox_size == 0)
        html = await (await hub.get("/dashboard/fragments/overview")).text()
        assert _text(html, "phones-online").startswith("1")
        assert _text(html, "queued-total") == "0"
        assert "3 sent · 0 failed attempts" in html
        assert html.count('class="sent"') == 1  # one bar: all in this minute


async def test_device_actions_disconnect_end_sessions_revoke_and_pace(hub: TestClient) -> None:
    device_id = await add_device(hub, "shop-phone-1")
    csrf = await logged_in(hub)
    path = f"/dashboard/devices/{device_id}"

    async def act(action: str, **data: str) -> str:
        resp = await hub.post(f"{path}/{action}", data={"csrf": csrf, **data},
                              headers=origin(hub), allow_redirects=False)
        assert resp.status == 303, await resp.text()
        return resp.headers["Location"]

    assert await act("disconnect") == f"{path}?done=not-connected"
    behaviour = PhoneBehaviour(backoff_initial=0.05, backoff_max=0.1)
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD, behaviour) as phone:
        assert await act("disconnect") == f"{path}?done=disconnected"
        # 1000: a normal close; the phone comes back by itself with its token.
        await phone.wait_for(lambda: phone.close_codes == [1000] and phone.auth_count == 2)
        page = await (await hub.get(f"{path}?done=disconnected")).text()
        assert "The phone was disconnected" in page

        assert await act("pacing", per_minute="12") == f"{path}?done=pacing-set"
        assert hub.app[HUB].pacer(device_id).per_minute == 12
        assert await act("pacing", per_minute="0.5") == f"{path}?done=pacing-invalid"
        assert await act("pacing", per_minute="") == f"{path}?done=pacing-off"
        assert hub.app[HUB].pacer(device_id).per_minute is None

        assert await act("end-sessions") == f"{path}?done=sessions-ended"
        await phone.wait_for(lambda: 4401 in phone.close_codes)
    assert await hub.app[POOL].fetchval(
        "SELECT count(*) FROM tokens WHERE kind = 'session'") == 0

    created = await hub.post("/api/tokens", json={"name": "billing"}, headers=basic())
    token = (await created.json())["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await hub.get("/api/device", headers=bearer)).status == 200
    token_id = (await created.json())["id"]
    page = await (await hub.get(path)).text()
    assert "billing" in page and token not in page
    assert await act(f"tokens/{token_id}/revoke") == f"{path}?done=token-revoked"
    assert (await hub.get("/api/device", headers=bearer)).status == 401
    assert await act(f"tokens/{token_id}/revoke") == f"{path}?done=token-missing"
    assert (await hub.post("/dashboard/devices/999/disconnect", data={"csrf": csrf},
                           headers=origin(hub))).status == 404


async def test_disconnect_reaches_the_phone_on_another_hub_process(make_hub: HubFactory) -> None:
    holder = await make_hub(SMSNODES_DASHBOARD_SESSION_SECRET=SECRET)
    other = await make_hub(SMSNODES_DASHBOARD_SESSION_SECRET=SECRET)
    device_id = await add_device(holder, "shop-phone-1")
    csrf = await logged_in(other)
    behaviour = PhoneBehaviour(backoff_initial=0.05, backoff_max=0.1)
    async with SimulatedPhone(ws_url(holder), "shop-phone-1", PASSWORD, behaviour) as phone:
        resp = await other.post(f"/dashboard/devices/{device_id}/disconnect",
                                data={"csrf": csrf}, headers=origin(other),
                                allow_redirects=False)
        assert resp.headers["Location"].endswith("?done=disconnected")
        # Through the bus: the process holding the socket closes it.
        await phone.wait_for(lambda: phone.close_codes == [1000])


async def test_message_search_filters_and_pages(hub: TestClient) -> None:
    first = await add_device(hub, "shop-phone-1")
    await add_device(hub, "back-office")
    await logged_in(hub)
    for n in range(55):
        await send(hub, text=f"m{n}")
    other = (await send(hub, "back-office"))["messageId"]
    cancelled = (await send(hub))["messageId"]
    await hub.delete(f"/api/messages/{cancelled}", headers=basic())

    def ids(html: str) -> list[int]:
        return [int(i) for i in re.findall(r'<a href="/dashboard/messages/(\d+)">', html)]

    page1 = await (await hub.get("/dashboard/messages")).text()
    assert len(ids(page1)) == 50 and ids(page1)[0] == cancelled and 'rel="next"' in page1
    page2 = await (await hub.get("/dashboard/messages?page=2")).text()
    assert len(ids(page2)) == 7 and 'rel="next"' not in page2 and 'rel="prev"' in page2
    theirs = await (await hub.get(f"/dashboard/messages?device={first + 1}")).text()
    assert ids(theirs) == [other]
    gone = await (await hub.get("/dashboard/messages?status=cancelled")).text()
    assert ids(gone) == [cancelled]
    today = (await hub.app[POOL].fetchval("SELECT now()::date")).isoformat()
    same_day = await (await hub.get(f"/dashboard/messages?from={today}&to={today}")).text()
    assert len(ids(same_day)) == 50
    future = await (await hub.get("/dashboard/messages?from=2999-01-01")).text()
    assert ids(future) == [] and "No message matches" in future
    bad = await hub.get("/dashboard/messages?status=lost&from=yesterday")
    assert bad.status == 400
    assert "status must be one of the list" in await bad.text()
    # Numbers int() cannot read (over 4300 digits) are no numbers here either: was a 500.
    huge = await hub.get("/dashboard/messages?page=" + "9" * 5000)
    assert huge.status == 200 and ids(await huge.text()) == ids(page1)


async def test_message_page_shows_the_timeline_and_cancels(hub: TestClient) -> None:
    await add_device(hub, "shop-phone-1")
    csrf = await logged_in(hub)
    mid = (await send(hub, numbers=["+15550000001", "+15550000002"]))["messageId"]
    page = await (await hub.get(f"/dashboard/messages/{mid}")).text()
    assert "recipient 1" in page and "recipient 2" in page and 'id="cancel-message"' in page
    resp = await hub.post(f"/dashboard/messages/{mid}/cancel", data={"csrf": csrf},
                          headers=origin(hub), allow_redirects=False)
    assert resp.headers["Location"] == f"/dashboard/messages/{mid}?done=cancelled"
    body = await (await hub.get(f"/api/messages/{mid}", headers=basic())).json()
    assert body["status"] == "cancelled"
    page = await (await hub.get(f"/dashboard/messages/{mid}")).text()
    assert page.count('data-status="cancelled"') >= 4  # status, 2 recipients, timeline
    assert 'id="cancel-message"' not in page
    resp = await hub.post(f"/dashboard/messages/{mid}/cancel", data={"csrf": csrf},
                          headers=origin(hub), allow_redirects=False)
    assert resp.headers["Location"].endswith("?done=nothing-to-cancel")
    assert (await hub.get("/dashboard/messages/999999")).status == 404
    # Digits int() refuses ("²" passes str.isdigit) are a 404 and an ignored page, not a 500.
    assert (await hub.get("/dashboard/messages/%C2%B2")).status == 404
    assert (await hub.get("/dashboard/messages?page=%C2%B2&device=%C2%B2")).status == 400


async def test_webhooks_page_shows_each_webhooks_health_without_secret_paths(
    hub: TestClient,
) -> None:
    device_id = await add_device(hub, "shop-phone-1")
    await logged_in(hub)
    rows = await add_webhook_rows(hub, device_id)
    html = await (await hub.get("/dashboard/webhooks")).text()
    assert "1 failing · 1 disabled" in html  # the summary card

    def health(webhook_id: int) -> tuple[str, str]:
        row = element(html, f"webhook-{webhook_id}")
        badges = re.findall(r'data-health="(\w+)">(\w+)</span>', row)
        assert len(badges) == 1, row
        return badges[0]

    assert health(rows.failing) == ("failing", "failing")
    assert health(rows.disabled) == ("disabled", "disabled")
    assert health(rows.healthy) == ("healthy", "healthy")
    failing = element(html, f"webhook-{rows.failing}")
    assert re.search(r"since <time[^>]*>3 days ago</time>", failing), failing
    assert "<code>https://hooks.example.com/…</code>" in failing
    assert "no success for 72 hours" in element(html, f"webhook-{rows.disabled}")
    assert re.search(r"<time[^>]*>1 min ago</time>", element(html, f"webhook-{rows.healthy}"))
    # Each given-up delivery is listed with its last answer, the secret path cut off.
    for delivery in rows.failed_deliveries:
        row = element(html, f"failure-{delivery}")
        assert 'data-state="failed">failed</span>' in row
        assert "HTTP 500" in row and "https://hooks.example.com/…: 500" in row
    assert "T0SECRET" not in html and "sig=" not in html


class _Focusables(HTMLParser):
    """Every element a keyboard can reach, as (tag, id or None)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if (tag == "a" and "href" in a) or tag in ("button", "select", "textarea") or (
                tag == "input" and a.get("type") != "hidden") or "tabindex" in a:
            self.found.append((tag, a.get("id")))


async def test_everything_focusable_in_a_live_fragment_keeps_its_id_across_refreshes(
    hub: TestClient,
) -> None:
    # htmx puts the focus back after a refresh only on an element with the same id: without
    # one, every refresh throws a keyboard user back to the top of the page.
    device_id = await add_device(hub, "shop-phone-1")
    await add_device(hub, "back-office")
    await logged_in(hub)
    await add_webhook_rows(hub, device_id)
    message_id = (await send(hub, numbers=["+15550000001", "+15550000002"]))["messageId"]
    fragments = ["/dashboard/fragments/overview", "/dashboard/fragments/devices",
                 f"/dashboard/fragments/devices/{device_id}/status",
                 f"/dashboard/fragments/devices/{device_id}/messages",
                 f"/dashboard/fragments/messages/{message_id}", "/dashboard/fragments/webhooks",
                 "/dashboard/fragments/accounts", f"/dashboard/fragments/accounts/{device_id}"]
    assert {p for m, p in route_paths(hub, device_id, message_id) if "/fragments/" in p} == \
        set(fragments)  # every fragment the router has
    total = 0
    for path in fragments:
        seen = []
        for _ in range(2):
            parser = _Focusables()
            parser.feed(await (await hub.get(path)).text())
            seen.append(parser.found)
        ids = [i for _, i in seen[0]]
        assert None not in ids, (path, seen[0])
        assert len(set(ids)) == len(ids), (path, ids)
        assert seen[0] == seen[1], path
        total += len(ids)
    assert total >= 15  # links, tables, buttons: the check had something to check


def test_phone_written_errors_lose_anything_like_a_number() -> None:
    assert redact_numbers("RESULT_ERROR_NO_SERVICE") == "RESULT_ERROR_NO_SERVICE"
    assert redact_numbers("HTTP 500 after 3 tries") == "HTTP 500 after 3 tries"
    for leaky in ("15557770101", "failed for +1 (555) 777-0101", "to 555 777 0101: no",
                  "RESULT_15557770101", "+44 20 7946 0958", "code 12345", "+33"):
        shown = redact_numbers(leaky)
        assert "[number]" in shown and sum(c.isdigit() for c in shown) < 5, (leaky, shown)
    assert redact_numbers(None) == "" and len(redact_numbers("x" * 1000)) == 300
    assert origin_of("https://SMS.example.org:443") == "https://sms.example.org"
    assert origin_of("http://[::1]:8080/x") == "http://[::1]:8080"
    assert origin_of("javascript:alert(1)") is None and origin_of("https://x:99999") is None


# -- Small parts --------------------------------------------------------------------------


def test_webhook_targets_and_errors_lose_their_paths() -> None:
    assert webhook_target("https://u:p@hooks.example.com:8443/s/T0/B0/XYZ?sig=1") == \
        "https://hooks.example.com:8443/…"
    assert webhook_target("https://example.com/") == "https://example.com"
    assert scrub_urls("POST https://a.example/x/SECRET?k=v failed: timeout") == \
        "POST https://a.example/… failed: timeout"
    assert scrub_urls("POST https://a.example/x?sig=1: 500 (see https://b.example/).") == \
        "POST https://a.example/…: 500 (see https://b.example)."


def test_chart_scales_to_a_round_top_and_stacks_failures() -> None:
    assert [nice_ceiling(v) for v in (0, 1, 3, 7, 10, 11, 450)] == [1, 1, 5, 10, 10, 20, 500]
    from datetime import UTC, datetime
    minute = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    chart = throughput_chart([(minute, 0, 0), (minute, 6, 2), (minute, 0, 0)])
    assert chart.top == 10 and chart.total_sent == 6 and chart.total_failed == 2
    bar = chart.bars[1]
    assert bar.sent_height > bar.failed_height > 0
    assert bar.failed_y + bar.failed_height == pytest.approx(bar.sent_y)
    assert bar.label == "10:00 UTC: 6 sent, 2 failed"


# -- Helpers ------------------------------------------------------------------------------


def _text(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, element_id
    return match.group(1).strip()
