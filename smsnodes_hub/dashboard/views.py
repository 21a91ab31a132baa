"""Dashboard pages, the fragments that keep them live, and the operators' actions.

Handlers stay thin: SQL lives in queries.py and operator_queries.py, rules in the domain
modules (withdrawal.cancel, devices.set_pace, tokens.revoke_*, Hub.disconnect). Everything
shown is metadata: the dashboard holds no data key, so it could not show a message text or
a phone number even if it tried. Actions answer with a redirect (post/redirect/get)
carrying a fixed notice code."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, time, timedelta
from typing import Any

import aiohttp_jinja2
import asyncpg
from aiohttp import web

from smsnodes_hub.api.pagination import plain_number
from smsnodes_hub.appkeys import AUTH, HUB, POOL
from smsnodes_hub.auth import tokens
from smsnodes_hub.auth.accounts import MAX_PASSWORD
from smsnodes_hub.dashboard import operator_queries, operators, queries
from smsnodes_hub.dashboard.auth import DashboardState, Operator, safe_next, session_hash
from smsnodes_hub.dashboard.chart import throughput_chart
from smsnodes_hub.dashboard.keys import DASHBOARD, JINJA, OPERATOR
from smsnodes_hub.device import store as devices
from smsnodes_hub.device.sessions import PROCESS_STALE
from smsnodes_hub.messaging import withdrawal
from smsnodes_hub.messaging.messages import STATUSES

log = logging.getLogger(__name__)

OVERVIEW_PHONES = 12  # phones listed on the overview; the devices page has them all
DEVICE_LIST_LIMIT = 1000
RECENT_MESSAGES = 25
PER_PAGE = 50
MAX_PAGE = 10_000

# What an action's redirect may say: codes in the URL, texts from here (nothing reflected).
NOTICES = {
    "disconnected": "The phone was disconnected. It reconnects with its session token unless "
                    "you end its sessions too.",
    "not-connected": "The phone was not connected.",
    "sessions-ended": "Every phone session of this device ended: the phone must log in with "
                      "its password again.",
    "token-revoked": "The token was revoked.",
    "token-missing": "That token no longer exists.",
    "pacing-set": "Pacing saved.",
    "pacing-off": "Pacing removed: the phone sends as fast as it can.",
    "pacing-invalid": f"Pacing must be a whole number from 1 to {devices.MAX_PACE}, or empty "
                      "for no limit.",
    "cancelled": "Cancelled: every recipient not yet sent ends cancelled.",
    "nothing-to-cancel": "Nothing to cancel: every recipient was already sent or has ended.",
}
ERROR_NOTICES = {"pacing-invalid", "nothing-to-cancel", "token-missing"}


# -- Helpers --------------------------------------------------------------------------------


def _state(request: web.Request) -> DashboardState:
    return request.config_dict[DASHBOARD]


def _pool(request: web.Request) -> asyncpg.Pool:
    return request.config_dict[POOL]


def render(request: web.Request, template: str, status: int = 200,
           **context: Any) -> web.Response:
    operator: Operator | None = request.get(OPERATOR)
    done = request.query.get("done")
    base = {
        "operator": operator,
        "csrf": operator.csrf if operator else "",
        "refresh": _state(request).refresh,
        "now": datetime.now(UTC),
        "notice": NOTICES.get(done or ""),
        "notice_is_error": done in ERROR_NOTICES,
        "path": request.path,
    }
    return aiohttp_jinja2.render_template(
        template, request, {**base, **context}, app_key=JINJA, status=status
    )


def _id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info[name]
    if not plain_number(raw) or len(raw) > 18:
        raise web.HTTPNotFound(text="Not found")
    return int(raw)


def _back(path: str, done: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{path}?done={done}")


def _not_found(request: web.Request, what: str) -> web.Response:
    return render(request, "not_found.html", status=404, what=what)


# -- Login and logout -----------------------------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    if request.get(OPERATOR) is not None:
        raise web.HTTPSeeOther("/dashboard")
    return _login_form(request, status=200, error=None,
                       bye="bye" in request.query, next_path=request.query.get("next"))


def _login_form(request: web.Request, *, status: int, error: str | None, bye: bool = False,
                next_path: str | None = None, username: str = "") -> web.Response:
    state = _state(request)
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
    state = _state(request)
    address = request.remote or "unknown"
    wait = state.throttle.retry_after(username, address)
    if wait is not None:
        response = _login_form(
            request, status=429, next_path=next_path, username=username,
            error=f"Too many failed logins. Try again in {wait} seconds.",
        )
        response.headers["Retry-After"] = str(wait)
        return response
    auth = request.config_dict[AUTH]
    operator_id = None
    if len(password) <= MAX_PASSWORD:
        operator_id = await operators.verify(_pool(request), auth.kdf, auth.params, username,
                                             password)
    if operator_id is None:
        state.throttle.failure(username, address)
        # The address only: a password typed into the username field must not reach logs.
        log.info("dashboard: failed login from %s", address)
        return _login_form(request, status=401, error="Wrong username or password.",
                           next_path=next_path, username=username)
    state.throttle.success(username, address)
    raw = os.urandom(32)
    await operator_queries.create_session(_pool(request), operator_id, session_hash(raw),
                                          state.lifetime, address)
    log.info("dashboard: %r logged in from %s", username, address)
    response = web.HTTPSeeOther(safe_next(next_path))
    state.set_session_cookie(response, raw)
    state.clear_login_cookie(response)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    raw = state.session_raw(request.cookies.get(state.session_cookie))
    if raw is not None:
        await operator_queries.delete_session(_pool(request), session_hash(raw))
    response = web.HTTPSeeOther("/dashboard/login?bye=1")
    state.clear_session_cookie(response)
    raise response


# -- Overview -------------------------------------------------------------------------------


async def _overview(request: web.Request) -> dict[str, Any]:
    async with _pool(request).acquire() as conn:
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


# -- Devices --------------------------------------------------------------------------------


async def device_list(request: web.Request) -> web.Response:
    rows = await queries.list_devices(_pool(request), PROCESS_STALE, DEVICE_LIST_LIMIT)
    return render(request, "devices.html", devices=rows, limit=DEVICE_LIST_LIMIT)


async def device_list_fragment(request: web.Request) -> web.Response:
    rows = await queries.list_devices(_pool(request), PROCESS_STALE, DEVICE_LIST_LIMIT)
    return render(request, "_devices.html", devices=rows, limit=DEVICE_LIST_LIMIT)


async def device_page(request: web.Request) -> web.Response:
    device_id = _id(request)
    pool = _pool(request)
    device = await queries.get_device(pool, PROCESS_STALE, device_id)
    if device is None:
        return _not_found(request, "device")
    return render(
        request, "device.html", device=device,
        tokens=await tokens.list_tokens(pool, device_id),
        recent=await queries.recent_messages(pool, device_id, RECENT_MESSAGES),
        max_pace=devices.MAX_PACE,
    )


async def device_status_fragment(request: web.Request) -> web.Response:
    device = await queries.get_device(_pool(request), PROCESS_STALE, _id(request))
    if device is None:
        raise web.HTTPNotFound(text="No such device")
    return render(request, "_device_status.html", device=device)


async def device_messages_fragment(request: web.Request) -> web.Response:
    device_id = _id(request)
    recent = await queries.recent_messages(_pool(request), device_id, RECENT_MESSAGES)
    return render(request, "_device_messages.html", recent=recent)


async def _existing_device(request: web.Request) -> tuple[int, asyncpg.Record]:
    device_id = _id(request)
    device = await queries.get_device(_pool(request), PROCESS_STALE, device_id)
    if device is None:
        raise web.HTTPNotFound(text="No such device")
    return device_id, device


def _who(request: web.Request) -> str:
    return request[OPERATOR].username


async def disconnect_device(request: web.Request) -> web.StreamResponse:
    device_id, device = await _existing_device(request)
    path = f"/dashboard/devices/{device_id}"
    if device["connected_since"] is None:
        raise _back(path, "not-connected")
    await request.config_dict[HUB].disconnect(device_id)
    log.info("dashboard: %r disconnected device %r", _who(request), device["username"])
    raise _back(path, "disconnected")


async def end_sessions(request: web.Request) -> web.StreamResponse:
    device_id, device = await _existing_device(request)
    ended = await tokens.revoke_session_tokens(_pool(request), device_id)
    log.info("dashboard: %r ended %d phone session(s) of device %r", _who(request), ended,
             device["username"])
    raise _back(f"/dashboard/devices/{device_id}", "sessions-ended")


async def revoke_token(request: web.Request) -> web.StreamResponse:
    device_id, device = await _existing_device(request)
    token_id = _id(request, "token")
    path = f"/dashboard/devices/{device_id}"
    if not await tokens.revoke_token(_pool(request), device_id, token_id):
        raise _back(path, "token-missing")
    log.info("dashboard: %r revoked token %d of device %r", _who(request), token_id,
             device["username"])
    raise _back(path, "token-revoked")


async def set_pacing(request: web.Request) -> web.StreamResponse:
    device_id, device = await _existing_device(request)
    path = f"/dashboard/devices/{device_id}"
    raw = (await request.post()).get("per_minute", "")
    raw = raw.strip().lower() if isinstance(raw, str) else "?"
    if raw in ("", "off", "0"):
        per_minute = None
    elif plain_number(raw) and 1 <= int(raw) <= devices.MAX_PACE:
        per_minute = int(raw)
    else:
        raise _back(path, "pacing-invalid")
    # Stored and announced on the bus (the process holding the socket applies it), and
    # applied here at once as the HTTP API does.
    await devices.set_pace(_pool(request), device_id, per_minute)
    request.config_dict[HUB].set_pace(device_id, per_minute)
    log.info("dashboard: %r set pacing of device %r to %s", _who(request), device["username"],
             per_minute or "off")
    raise _back(path, "pacing-set" if per_minute else "pacing-off")


# -- Messages -------------------------------------------------------------------------------


def _day(raw: str | None, name: str, problems: list[str]) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.combine(datetime.strptime(raw, "%Y-%m-%d").date(), time(), UTC)
    except ValueError:
        problems.append(f"{name} must be a date (YYYY-MM-DD)")
        return None


async def message_search(request: web.Request) -> web.Response:
    query = request.query
    problems: list[str] = []
    device_raw = query.get("device", "")
    device_id = int(device_raw) if plain_number(device_raw) and len(device_raw) < 19 else None
    if device_raw and device_id is None:
        problems.append("device must be one of the list")
    status = query.get("status") or None
    if status is not None and status not in STATUSES:
        problems.append("status must be one of the list")
        status = None
    since = _day(query.get("from"), "from", problems)
    until = _day(query.get("to"), "to", problems)
    if until is not None:
        until += timedelta(days=1)  # "to" is inclusive: the whole day
    page_raw = query.get("page", "1")
    page = int(page_raw) if plain_number(page_raw) and 1 <= int(page_raw) <= MAX_PAGE else 1
    search = queries.MessageSearch(device_id, status, since, until)
    pool = _pool(request)
    rows = await queries.search_messages(pool, search, PER_PAGE + 1, (page - 1) * PER_PAGE)
    # Only valid filters go back into the form and the page links (nothing else is echoed).
    filters = {name: value for name, value, ok in (
        ("device", device_raw, device_id is not None), ("status", status or "", bool(status)),
        ("from", query.get("from", ""), since is not None),
        ("to", query.get("to", ""), until is not None)) if ok}
    return render(
        request, "messages.html", status=400 if problems else 200,
        rows=rows[:PER_PAGE], more=len(rows) > PER_PAGE, page=page, filters=filters,
        problems=problems, devices=await queries.device_names(pool),
        statuses=STATUSES,
    )


async def _message(request: web.Request) -> dict[str, Any] | None:
    found = await queries.get_message(_pool(request), _id(request))
    if found is None:
        return None
    row, events = found
    return {"message": row, "events": events,
            "cancellable": row["status"] in queries.CANCELLABLE}


async def message_page(request: web.Request) -> web.Response:
    data = await _message(request)
    if data is None:
        return _not_found(request, "message")
    return render(request, "message.html", **data)


async def message_fragment(request: web.Request) -> web.Response:
    data = await _message(request)
    if data is None:
        raise web.HTTPNotFound(text="No such message")
    return render(request, "_message.html", **data)


async def cancel_message(request: web.Request) -> web.StreamResponse:
    message_id = _id(request)
    pool = _pool(request)
    path = f"/dashboard/messages/{message_id}"
    # withdrawal.cancel works per account (the API's rule); the operator acts for the owner.
    account_id = await queries.message_account(pool, message_id)
    if account_id is None:
        raise web.HTTPNotFound(text="No such message")
    try:
        withdrawn = await withdrawal.cancel(pool, account_id, message_id)
    except withdrawal.NotFound:
        raise web.HTTPNotFound(text="No such message") from None
    except withdrawal.NothingToCancel:
        raise _back(path, "nothing-to-cancel") from None
    if withdrawn.on_phone:
        await request.config_dict[HUB].withdraw(withdrawn.device_id, message_id)
    log.info("dashboard: %r cancelled message %d", _who(request), message_id)
    raise _back(path, "cancelled")


# -- Webhooks -------------------------------------------------------------------------------


async def _webhooks(request: web.Request) -> dict[str, Any]:
    async with _pool(request).acquire() as conn:
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
    r.add_get("/devices", device_list)
    r.add_get("/fragments/devices", device_list_fragment)
    r.add_get("/devices/{id}", device_page)
    r.add_get("/fragments/devices/{id}/status", device_status_fragment)
    r.add_get("/fragments/devices/{id}/messages", device_messages_fragment)
    r.add_post("/devices/{id}/disconnect", disconnect_device)
    r.add_post("/devices/{id}/end-sessions", end_sessions)
    r.add_post("/devices/{id}/tokens/{token}/revoke", revoke_token)
    r.add_post("/devices/{id}/pacing", set_pacing)
    r.add_get("/messages", message_search)
    r.add_get("/messages/{id}", message_page)
    r.add_get("/fragments/messages/{id}", message_fragment)
    r.add_post("/messages/{id}/cancel", cancel_message)
    r.add_get("/webhooks", webhooks_page)
    r.add_get("/fragments/webhooks", webhooks_fragment)
