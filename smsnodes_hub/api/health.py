"""GET /api/health: the seed's fields, answered within 2 seconds even with the database down."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from smsnodes_hub import __version__
from smsnodes_hub.api.errors import json_response
from smsnodes_hub.appkeys import HUB, POOL, SETTINGS
from smsnodes_hub.auth.crypto import SCHEME
from smsnodes_hub.db import UNAVAILABLE
from smsnodes_hub.timefmt import now_iso

log = logging.getLogger(__name__)

DATABASE_BUDGET = 1.5  # seconds: leaves room inside the 2 s promise
NO_STORE = {"Cache-Control": "no-store"}


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
    # The query runs in its own task and is abandoned, not awaited, at the deadline: when the
    # server hangs, a cancelled asyncpg query keeps its caller waiting for the cancellation
    # (seconds), which would break the 2 s promise.
    check = asyncio.ensure_future(hub.connected_devices(request.app[POOL]))
    check.add_done_callback(_reap)
    try:
        await asyncio.wait({check}, timeout=DATABASE_BUDGET)
    finally:
        if not check.done():
            check.cancel()
    problem = None if check.done() and not check.cancelled() else "timed out"
    if problem is None and (exc := check.exception()) is not None:
        problem = str(exc) or type(exc).__name__
        if not isinstance(exc, UNAVAILABLE):
            log.warning("health check: database error: %s", problem)
    if problem is not None:
        body["status"] = "unhealthy"
        body["database"] = "unavailable"
        body["connectedDevices"] = len(hub.connections)
        return json_response(body, 503, {"Retry-After": "5", **NO_STORE})
    body["connectedDevices"] = check.result()
    return json_response(body, headers=NO_STORE)


def _reap(task: asyncio.Future[int]) -> None:
    # Fetch the outcome of an abandoned check so asyncio does not log it as never retrieved.
    if not task.cancelled():
        task.exception()
