"""The dashboard's handlers on a real hub: sessions, CSRF, login throttling, logout, the
pages' content and the operators' actions on real (simulated) phones."""

from __future__ import annotations

import asyncio
import re
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from device_sim import PhoneBehaviour, SimulatedPhone
from yarl import URL

from smsnodes_hub import crypto
from smsnodes_hub.appkeys import HUB, POOL
from smsnodes_hub.dashboard import SUBAPP, scrub_urls, webhook_target
from smsnodes_hub.dashboard.auth import DashboardKeyError, DashboardState, load_key_file
from smsnodes_hub.dashboard.chart import nice_ceiling, throughput_chart

from .conftest import PASSWORD, add_device, test_settings, ws_url
from .dashboard_support import (
    OPERATOR,
    OPERATOR_PASSWORD,
    HubFactory,
    add_operator,
    hidden,
    key_file_in,
    logged_in,
    login,
    origin,
)
from .test_delivery import send
from .test_status_api import basic

SECRET = "a shared dashboard signing secret, 32+ chars"


@pytest.fixture
def make_hub(make_hub: HubFactory, tmp_path: Path) -> HubFactory:
    # conftest's make_hub, keeping the dashboard's key file in the test's folder.
    return key_file_in(make_hub, tmp_path)


@pytest.fixture
async def hub(make_hub: HubFactory) -> TestClient:
    return await make_hub()



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


def test_over_tls_the_cookie_is_secure_and_host_only(database_url: str) -> None:
    settings = test_settings(database_url, SMSNODES_DASHBOARD_SESSION_SECRET=SECRET)
    tls = replace(settings, server=replace(settings.server, tls_cert="c.pem", tls_key="k.pem"))
    state = DashboardState(tls)
    response = web.Response()
    state.set_session_cookie(response, b"\x01" * 32)
    cookie = response.cookies["__Host-smsnodes_session"].OutputString()
    assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie


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
    await _webhook_with_failures(hub, device_id)
    html = await (await hub.get("/dashboard/fragments/overview")).text()
    assert _text(html, "phones-online").startswith("0")
    assert _text(html, "queued-total") == "3"
    assert _text(html, "webhook-failures") == "2"
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


async def test_webhooks_page_shows_health_without_secret_paths(hub: TestClient) -> None:
    device_id = await add_device(hub, "shop-phone-1")
    await logged_in(hub)
    await _webhook_with_failures(hub, device_id)
    html = await (await hub.get("/dashboard/webhooks")).text()
    assert "https://hooks.example.com/…" in html
    assert "T0SECRET" not in html and "sig=" not in html
    assert "disabled" in html and "failing for 80 hours" in html
    assert "HTTP 500" in html and "failing" in html


# -- Small parts --------------------------------------------------------------------------


def test_webhook_targets_and_errors_lose_their_paths() -> None:
    assert webhook_target("https://u:p@hooks.example.com:8443/s/T0/B0/XYZ?sig=1") == \
        "https://hooks.example.com:8443/…"
    assert webhook_target("https://example.com/") == "https://example.com"
    assert scrub_urls("POST https://a.example/x/SECRET?k=v failed: timeout") == \
        "POST https://a.example/… failed: timeout"


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


async def _webhook_with_failures(hub: TestClient, device_id: int) -> None:
    """Webhook rows as the delivery code writes them (that code is another module's)."""
    pool = hub.app[POOL]
    account = await pool.fetchval("SELECT account_id FROM devices WHERE id = $1", device_id)
    secret = crypto.seal(crypto.new_data_key(), b"s", b"test")
    hook = await pool.fetchval(
        """INSERT INTO webhooks (account_id, url, events, secret, failing_since)
           VALUES ($1, 'https://hooks.example.com/services/T0SECRET?sig=abc', $2, $3,
                   now() - interval '80 hours') RETURNING id""",
        account, ["message.failed"], secret)
    await pool.execute(
        """INSERT INTO webhooks (account_id, url, events, secret, active, disabled_reason)
           VALUES ($1, 'https://other.example/hook', $2, $3, false,
                   'failing for 80 hours without a success')""",
        account, ["sms.received"], secret)
    for state in ("failed", "failed", "pending", "delivered"):
        delivery = await pool.fetchval(
            """INSERT INTO webhook_deliveries (webhook_id, account_id, event_id, event_type,
                                               state, attempts)
               VALUES ($1, $2, gen_random_uuid(), 'message.failed', $3, 2) RETURNING id""",
            hook, account, state)
        await pool.execute(
            """INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms,
                                             status_code, error)
               VALUES ($1, 2, now(), 120, 500,
                       'POST https://hooks.example.com/services/T0SECRET?sig=abc: 500')""",
            delivery)
