"""The account's phones (ACCOUNTS.md "Managing phones"): POST /api/devices adds one, GET lists
them with their load, DELETE /api/devices/{id} removes one. Adding and removing need the
account's own credentials; any credential of the account may list."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from smsnodes_hub.api import device
from smsnodes_hub.api.auth import authenticate, authenticate_account
from smsnodes_hub.api.body import read_json_object
from smsnodes_hub.api.errors import json_response
from smsnodes_hub.api.pagination import path_id
from smsnodes_hub.appkeys import AUTH, POOL
from smsnodes_hub.auth import accounts, owners
from smsnodes_hub.device import store as devices
from smsnodes_hub.device.sessions import PROCESS_STALE
from smsnodes_hub.errors import Conflict, InvalidRequest, NotFound


def render(row: asyncpg.Record) -> dict[str, Any]:
    return {**device.render(row), "queued": row["queued"], "inFlight": row["in_flight"],
            "sentToday": row["sent_today"]}


async def list_devices(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    rows = await devices.describe_account(request.app[POOL], principal.account_id,
                                          PROCESS_STALE)
    return json_response({"data": [render(r) for r in rows]})


async def add_device(request: web.Request) -> web.Response:
    owner = await authenticate_account(request)
    body = await read_json_object(request)
    username, password = body.get("username"), body.get("password")
    if username is None or password is None:
        raise InvalidRequest("username and password are required")
    try:
        accounts.check_username(username)
        accounts.check_password(password)
    except accounts.AccountError as exc:
        raise InvalidRequest(str(exc)) from None
    auth = request.app[AUTH]
    pool = request.app[POOL]
    try:
        device_id = await owners.add_phone(pool, auth.kdf, auth.params, owner, username,
                                           password)
    except accounts.AccountError as exc:
        raise Conflict(str(exc)) from None
    [row] = await devices.describe_account(pool, owner.account_id, PROCESS_STALE, device_id)
    return json_response(render(row), status=201)


async def remove_device(request: web.Request) -> web.Response:
    owner = await authenticate_account(request)
    device_id = path_id(request, "Device")
    pool = request.app[POOL]
    async with pool.acquire() as conn, conn.transaction():
        mine = await conn.fetchval(
            "SELECT id FROM devices WHERE id = $1 AND account_id = $2 FOR UPDATE",
            device_id, owner.account_id)
        if mine is None or await conn.fetchval("SELECT remove_phone($1)", device_id) is None:
            raise NotFound(f"Device {device_id} not found")
    return json_response({"id": device_id, "removed": True})
