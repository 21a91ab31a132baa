"""GET /api/health: the SMS Nodes compatible health check, for uptime monitors."""

from __future__ import annotations

from smsnodes_hub import __version__
from smsnodes_hub.api.openapi.builders import NO_STORE, RETRY_AFTER, Json, curl, ok, operation
from smsnodes_hub.auth.crypto import SCHEME

TAG = {"name": "Health", "description": "Monitoring (SMS Nodes compatible)."}
HEALTHY = {"status": "healthy", "timestamp": "2026-11-21T10:30:00Z", "ssl": False,
           "encryption": SCHEME, "connectedDevices": 3, "version": __version__,
           "database": "ok"}
UNHEALTHY = {**HEALTHY, "status": "unhealthy", "connectedDevices": 1,
             "database": "unavailable"}


def paths(base: str) -> Json:
    return {"/api/health": {"get": operation(
        "Health", "getHealth", "Health check",
        "For uptime monitors; no authentication. Compatible with the SMS Nodes gateway. When "
        "the database cannot be reached the answer is 503 with `\"status\": \"unhealthy\"`, "
        "within 2 seconds, never hanging.",
        security=[],
        responses={
            "200": ok("Healthy.", "Health", ("healthy", "Healthy", HEALTHY), headers=NO_STORE),
            "503": ok("The database cannot be reached.", "Health",
                      ("unhealthy", "Database down", UNHEALTHY),
                      headers={**NO_STORE, **RETRY_AFTER}),
        },
        curl=curl(f"{base}/api/health", login=""),
    )}}
