"""Dashboard: the phones, one phone's page and its live fragments, and the operator's
actions on a phone (disconnect, end sessions, revoke a token, pacing)."""

from __future__ import annotations

import logging

import asyncpg
from aiohttp import web

from smsnodes_hub.api.pagination import plain_number
from smsnodes_hub.appkeys import BEARER_CACHE, HUB
from smsnodes_hub.auth import tokens
from smsnodes_hub.dashboard import queries
from smsnodes_hub.dashboard.pages import (
    DEVICE_LIST_LIMIT,
    RECENT_MESSAGES,
    back,
    not_found,
    path_id,
    pool_of,
    render,
    who,
)
from smsnodes_hub.device import store as devices
from smsnodes_hub.device.sessions import PROCESS_STALE

log = logging.getLogger(__name__)


async def device_list(request: web.Request) -> web.Response:
    rows = await queries.list_devices(pool_of(request), PROCESS_STALE, DEVICE_LIST_LIMIT)
    return render(request, "devices.html", devices=rows, limit=DEVICE_LIST_LIMIT)


async def device_list_fragment(request: web.Request) -> web.Response:
    rows = await queries.list_devices(pool_of(request), PROCESS_STALE, DEVICE_LIST_LIMIT)
    return render(request, "_devices.html", devices=rows, limit=DEVICE_LIST_LIMIT)


async def device_page(request: web.Request) -> web.Response:
    device_id = path_id(request)
    pool = pool_of(request)
    device = await queries.get_device(pool, PROCESS_STALE, device_id)
    if device is None:
        return not_found(request, "device")
    return render(
        request, "device.html", device=device,
        tokens=await tokens.list_tokens(pool, device_id),
        recent=await queries.recent_messages(pool, device_id, RECENT_MESSAGES),
        max_pace=devices.MAX_PACE,
    )


async def device_status_fragment(request: web.Request) -> web.Response:
    device = await queries.get_device(pool_of(request), PROCESS_STALE, path_id(request))
    if device is None:
        raise web.HTTPNotFound(text="No such device")
    return render(request, "_device_status.html", device=device)


async def device_messages_fragment(request: web.Request) -> web.Response:
    device_id = path_id(request)
    recent = await queries.recent_messages(pool_of(request), device_id, RECENT_MESSAGES)
    return render(request, "_device_messages.html", recent=recent)


async def _existing_device(request: web.Request) -> tuple[int, asyncpg.Record]:
    device_id = path_id(request)
    device = await queries.get_device(pool_of(request), PROCESS_STALE, device_id)
    if device is None:
        raise web.HTTPNotFound(text="No such device")
    return device_id, device




async def disconnect_device(request: web.Request) -> web.StreamResponse:
    device_id, device = await _existing_device(request)
    path = f"/dashboard/devices/{device_id}"
    if device["connected_since"] is None:
        raise back(path, "not-connected")
    await request.config_dict[HUB].disconnect(device_id)
    log.info("dashboard: %r disconnected device %r", who(request), device["username"])
    raise back(path, "disconnected")


async def end_sessions(request: web.Request) -> web.StreamResponse:
    device_id, device = await _existing_device(request)
    ended = await tokens.revoke_session_tokens(pool_of(request), device_id)
    log.info("dashboard: %r ended %d phone session(s) of device %r", who(request), ended,
             device["username"])
    raise back(f"/dashboard/devices/{device_id}", "sessions-ended")


async def revoke_token(request: web.Request) -> web.StreamResponse:
    device_id, device = await _existing_device(request)
    token_id = path_id(request, "token")
    path = f"/dashboard/devices/{device_id}"
    if not await tokens.revoke_token(pool_of(request), device_id, token_id):
        raise back(path, "token-missing")
    request.config_dict[BEARER_CACHE].forget_token(token_id)  # now, not when the NOTIFY is back
    log.info("dashboard: %r revoked token %d of device %r", who(request), token_id,
             device["username"])
    raise back(path, "token-revoked")


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
        raise back(path, "pacing-invalid")
    # Stored and announced on the bus (the process holding the socket applies it), and
    # applied here at once as the HTTP API does.
    await devices.set_pace(pool_of(request), device_id, per_minute)
    request.config_dict[HUB].set_pace(device_id, per_minute)
    log.info("dashboard: %r set pacing of device %r to %s", who(request), device["username"],
             per_minute or "off")
    raise back(path, "pacing-set" if per_minute else "pacing-off")
