"""What every dashboard page shares: rendering with the operator, notices and CSRF token,
path ids, redirects after an action, and the page sizes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
import asyncpg
from aiohttp import web

from smsnodes_hub.api.pagination import plain_number
from smsnodes_hub.appkeys import POOL
from smsnodes_hub.dashboard.auth import DashboardState, Operator
from smsnodes_hub.dashboard.keys import DASHBOARD, JINJA, OPERATOR
from smsnodes_hub.device import store as devices

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


def dashboard_state(request: web.Request) -> DashboardState:
    return request.config_dict[DASHBOARD]


def pool_of(request: web.Request) -> asyncpg.Pool:
    return request.config_dict[POOL]


def render(request: web.Request, template: str, status: int = 200,
           **context: Any) -> web.Response:
    operator: Operator | None = request.get(OPERATOR)
    done = request.query.get("done")
    base = {
        "operator": operator,
        "csrf": operator.csrf if operator else "",
        "refresh": dashboard_state(request).refresh,
        "now": datetime.now(UTC),
        "notice": NOTICES.get(done or ""),
        "notice_is_error": done in ERROR_NOTICES,
        "path": request.path,
    }
    return aiohttp_jinja2.render_template(
        template, request, {**base, **context}, app_key=JINJA, status=status
    )


def path_id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info[name]
    if not plain_number(raw) or len(raw) > 18:
        raise web.HTTPNotFound(text="Not found")
    return int(raw)


def back(path: str, done: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{path}?done={done}")


def not_found(request: web.Request, what: str) -> web.Response:
    return render(request, "not_found.html", status=404, what=what)

def who(request: web.Request) -> str:
    return request[OPERATOR].username
