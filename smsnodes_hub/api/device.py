"""GET /api/device (the authenticated device: presence, telemetry, pacing) and
PUT /api/device/pacing."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from smsnodes_hub.api.auth import authenticate
from smsnodes_hub.api.body import read_json_object
from smsnodes_hub.api.errors import json_response
from smsnodes_hub.appkeys import HUB, POOL
from smsnodes_hub.auth.accounts import Principal
from smsnodes_hub.device import store as devices
from smsnodes_hub.device.sessions import PROCESS_STALE
from smsnodes_hub.errors import Forbidden, InvalidRequest, NotFound
from smsnodes_hub.timefmt import iso

ONE_PHONE = ("This is about one phone: authenticate with that phone's credentials (the "
             "account's phones are at /api/devices)")


def phone_of(principal: Principal) -> int:
    """The phone a phone's credentials name; the account's own credentials name none."""
    if principal.device_id is None:
        raise Forbidden(ONE_PHONE)
    return principal.device_id


async def get_device(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    row = await devices.describe(request.app[POOL], phone_of(principal), PROCESS_STALE)
    if row is None:
        raise NotFound("Device not found")
    return json_response(render(row))


def render(row: asyncpg.Record) -> dict[str, Any]:
    """A phone as GET /api/device shows it (GET /api/devices adds its load)."""
    return {
        "id": row["id"],
        "username": row["username"],
        "online": row["connected_since"] is not None,
        "connectedSince": iso(row["connected_since"]),
        "lastSeenAt": iso(row["last_seen_at"]),
        "createdAt": iso(row["created_at"]),
        "model": row["model"],
        "app": row["app_version"],
        "sims": row["sims"],
        "battery": row["battery"],
        "charging": row["charging"],
        "signal": row["signal"],
        "telemetryAt": iso(row["telemetry_at"]),
        "pacing": {"perMinute": row["pace_per_minute"]},
    }


async def put_pacing(request: web.Request) -> web.Response:
    device_id = phone_of(await authenticate(request))
    body = await read_json_object(request)
    if "perMinute" not in body:
        raise InvalidRequest("perMinute is required (a number of SMS per minute, or null)")
    per_minute = body["perMinute"]
    if per_minute is not None and (
        type(per_minute) is not int or not 1 <= per_minute <= devices.MAX_PACE
    ):
        raise InvalidRequest(
            f"perMinute must be a whole number from 1 to {devices.MAX_PACE}, or null"
        )
    await devices.set_pace(request.app[POOL], device_id, per_minute)
    request.app[HUB].set_pace(device_id, per_minute)
    return json_response({"perMinute": per_minute})
