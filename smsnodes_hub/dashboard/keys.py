"""Typed keys for the dashboard's shared state (no module-level mutable state)."""

from __future__ import annotations

import jinja2
from aiohttp import web

# The dashboard's own template environment: a key of its own, so it never collides with
# another aiohttp_jinja2 setup on the same application.
JINJA = web.AppKey("dashboard_jinja", jinja2.Environment)
DASHBOARD = web.AppKey("dashboard", "DashboardState")
# The logged-in operator of a dashboard request (set by the guard middleware).
OPERATOR = web.RequestKey("dashboard_operator", "Operator")
