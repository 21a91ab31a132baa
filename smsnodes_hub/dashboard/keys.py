"""Typed keys for the dashboard's shared state (no module-level mutable state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jinja2
from aiohttp import web

if TYPE_CHECKING:
    from smsnodes_hub.dashboard.auth import DashboardState, Operator

# The dashboard's own template environment: a key of its own, so it never collides with
# another aiohttp_jinja2 setup on the same application.
JINJA: web.AppKey[jinja2.Environment] = web.AppKey("dashboard_jinja")
DASHBOARD: web.AppKey[DashboardState] = web.AppKey("dashboard")
# The logged-in operator of a dashboard request (set by the guard middleware).
OPERATOR: web.RequestKey[Operator] = web.RequestKey("dashboard_operator")
