"""Dashboard pages, the fragments that keep them live, and the operators' actions.

Handlers stay thin: SQL lives in queries.py and operator_queries.py, rules in the domain
modules (withdrawal.cancel, devices.set_pace, tokens.revoke_*, Hub.disconnect). Everything
shown is metadata: the dashboard holds no data key, so it could not show a message text or
a phone number even if it tried. Actions answer with a redirect (post/redirect/get)
carrying a fixed notice code."""

from __future__ import annotations

import logging
import os
from typing import Any

from aiohttp import web

from smsnodes_hub.appkeys import AUTH, LOGIN_THROTTLE
from smsnodes_hub.auth import throttle
from smsnodes_hub.auth.addresses import client_address
from smsnodes_hub.dashboard import (
    account_views,
    device_views,
    message_views,
    operator_queries,
    operators,
    queries,
)
from smsnodes_hub.dashboard.auth import safe_next, session_hash
from smsnodes_hub.dashboard.chart import throughput_chart
from smsnodes_hub.dashboard.keys import OPERATOR
from smsnodes_hub.dashboard.pages import (
    OVERVIEW_PHONES,
    dashboard_state,
    pool_of,
    render,
)
from smsnodes_hub.device.sessions import PROCESS_STALE
from smsnodes_hub.messaging.messages import STATUSES

log = logging.getLogger(__name__)


# -- Login and logout -----------------------------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    if request.get(OPERATOR) is not None:
        raise web.HTTPSeeOther("/dashboard")
    return _login_form(request, status=200, error=None,
                       bye="bye" in request.query, next_path=request.query.get("next"))


def _login_form(request: web.Request, *, status: int, error: str | None, bye: bool = False,
                next_path: str | None = None, username: str = "") -> web.Response:
    state = dashboard_state(request)
    nonce = request.cookies.get(state.login_cookie)
    if not nonce or len(nonce) > 100:
        nonce = os.urandom(16).hex()
    response = render(request, "login.html", status=status, error=error, bye=bye,
                      login_csrf=state.login_csrf(nonce), next_path=safe_next(next_path),
                      username=username)
    state.set_login_cookie(response, nonce)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    username, password = form.get("username"), form.get("password")
    next_raw = form.get("next")
    next_path = next_raw if isinstance(next_raw, str) else None
    if not isinstance(username, str) or not isinstance(password, str) or not username \
            or not password:
        return _login_form(request, status=400, error="Enter your username and password.",
                           next_path=next_path)
    state = dashboard_state(request)
    address = client_address(request)
    auth = request.config_dict[AUTH]
    pool = pool_of(request)
    try:
        # Operators have a scope of their own: their failures never refuse a phone.
        operator_id = await request.config_dict[LOGIN_THROTTLE].guarded(
            pool, throttle.OPERATOR, username, address,
            lambda: operators.verify(pool, auth.kdf, auth.params, username, password))
    except throttle.Throttled as exc:
        response = _login_form(
            request, status=429, next_path=next_path, username=username,
            error=f"Too many failed logins. Try again in {exc.retry_after} seconds.",
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if operator_id is None:
        # The address only: a password typed into the username field must not reach logs.
        log.info("dashboard: failed login from %s", address)
        return _login_form(request, status=401, error="Wrong username or password.",
                           next_path=next_path, username=username)
    raw = os.urandom(32)
    await operator_queries.create_session(pool_of(request), operator_id, session_hash(raw),
                                          state.lifetime, address)
    log.info("dashboard: %r logged in from %s", username, address)
    response = web.HTTPSeeOther(safe_next(next_path))
    state.set_session_cookie(response, raw)
    state.clear_login_cookie(response)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    state = dashboard_state(request)
    raw = state.session_raw(request.cookies.get(state.session_cookie))
    if raw is not None:
        await operator_queries.delete_session(pool_of(request), session_hash(raw))
    response = web.HTTPSeeOther("/dashboard/login?bye=1")
    state.clear_session_cookie(response)
    raise response


# -- Overview -------------------------------------------------------------------------------


async def _overview(request: web.Request) -> dict[str, Any]:
    async with pool_of(request).acquire() as conn:
        counts = await queries.device_counts(conn, PROCESS_STALE)
        statuses = await queries.status_counts(conn)
        open_rows = await queries.open_counts(conn)
        minutes = await queries.throughput(conn)
        hooks = await queries.webhook_summary(conn)
        phones = await queries.list_devices(conn, PROCESS_STALE, OVERVIEW_PHONES)
    by_status = {s: (0, 0) for s in STATUSES}
    for row in statuses:
        by_status[row["status"]] = (row["hour"], row["day"])
    totals = {state: 0 for state in queries.CANCELLABLE}
    queue = {p: {"queued": 0, "scheduled": 0, "dispatched": 0, "accepted": 0}
             for p in range(5, 0, -1)}
    for row in open_rows:
        totals[row["state"]] += row["n"]
        queue[row["priority"]][row["state"]] += row["n"]
    return {
        "devices_total": counts["total"],
        "devices_online": counts["online"],
        "by_status": by_status,
        "totals": totals,
        "queue": queue,
        "chart": throughput_chart([(r["minute"], r["sent"], r["failed"]) for r in minutes]),
        "hooks": hooks,
        "phones": phones,
    }


async def overview(request: web.Request) -> web.Response:
    return render(request, "overview.html", **await _overview(request))


async def overview_fragment(request: web.Request) -> web.Response:
    return render(request, "_overview.html", **await _overview(request))


# -- Webhooks -------------------------------------------------------------------------------


async def _webhooks(request: web.Request) -> dict[str, Any]:
    async with pool_of(request).acquire() as conn:
        return {
            "summary": await queries.webhook_summary(conn),
            "webhooks": await queries.list_webhooks(conn),
            "failures": await queries.recent_deliveries(conn, 25, failures_only=True),
            "deliveries": await queries.recent_deliveries(conn, 25, failures_only=False),
        }


async def webhooks_page(request: web.Request) -> web.Response:
    return render(request, "webhooks.html", **await _webhooks(request))


async def webhooks_fragment(request: web.Request) -> web.Response:
    return render(request, "_webhooks.html", **await _webhooks(request))


def add_routes(app: web.Application) -> None:
    """Routes of the dashboard sub-application (mounted at /dashboard)."""
    r = app.router
    r.add_get("", overview)
    r.add_get("/", overview)
    r.add_get("/login", login_page)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/fragments/overview", overview_fragment)
    r.add_get("/devices", device_views.device_list)
    r.add_get("/fragments/devices", device_views.device_list_fragment)
    r.add_get("/devices/{id}", device_views.device_page)
    r.add_get("/fragments/devices/{id}/status", device_views.device_status_fragment)
    r.add_get("/fragments/devices/{id}/messages", device_views.device_messages_fragment)
    r.add_post("/devices/{id}/disconnect", device_views.disconnect_device)
    r.add_post("/devices/{id}/end-sessions", device_views.end_sessions)
    r.add_post("/devices/{id}/tokens/{token}/revoke", device_views.revoke_token)
    r.add_post("/devices/{id}/pacing", device_views.set_pacing)
    r.add_get("/accounts", account_views.account_list)
    r.add_get("/fragments/accounts", account_views.account_list_fragment)
    r.add_get("/accounts/{id}", account_views.account_page)
    r.add_get("/fragments/accounts/{id}", account_views.account_fragment)
    r.add_get("/messages", message_views.message_search)
    r.add_get("/messages/{id}", message_views.message_page)
    r.add_get("/fragments/messages/{id}", message_views.message_fragment)
    r.add_post("/messages/{id}/cancel", message_views.cancel_message)
    r.add_get("/webhooks", webhooks_page)
    r.add_get("/fragments/webhooks", webhooks_fragment)
