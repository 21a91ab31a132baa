"""GET /api/health: the seed's fields, answered within 2 seconds even with the database down."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .. import __version__
from ..appkeys import HUB, POOL, SETTINGS
from ..crypto import SCHEME
from ..db import UNAVAILABLE
from ..timefmt import now_iso
from .errors import json_response

DATABASE_BUDGET = 1.5  # seconds: leaves room inside the 2 s promise


async def get_health(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    body: dict[str, object] = {
        "status": "healthy",
        "timestamp": now_iso(),
        "ssl": request.app[SETTINGS].tls,
        "encryption": SCHEME,
        "connectedDevices": 0,
        "version": __version__,
        "database": "ok",
    }
    try:
        async with asyncio.timeout(DATABASE_BUDGET):
            body["connectedDevices"] = await hub.connected_devices(request.app[POOL])
    except UNAVAILABLE:
        body["status"] = "unhealthy"
        body["database"] = "unavailable"
        body["connectedDevices"] = len(hub.connections)
        return json_response(body, 503, {"Retry-After": "5", "Cache-Control": "no-store"})
    return json_response(body, headers={"Cache-Control": "no-store"})
