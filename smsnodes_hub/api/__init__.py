"""HTTP API: one module per resource; `setup` wires their routes."""

from __future__ import annotations

from aiohttp import web

from . import health, send_sms


def setup(app: web.Application) -> None:
    app.router.add_get("/api/health", health.get_health)
    app.router.add_post("/api/send-sms", send_sms.post_send_sms)
