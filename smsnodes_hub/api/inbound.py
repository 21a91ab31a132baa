"""GET /api/inbound and GET /api/inbound/{id}: the SMS the account's phones received,
decrypted for their owner (another account's ids are 404)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from smsnodes_hub.api.auth import authenticate
from smsnodes_hub.api.errors import json_response
from smsnodes_hub.api.messages import open_or_none
from smsnodes_hub.api.pagination import page_params, path_id, time_param
from smsnodes_hub.appkeys import POOL
from smsnodes_hub.auth.accounts import Principal
from smsnodes_hub.device import protocol
from smsnodes_hub.errors import InvalidRequest, NotFound
from smsnodes_hub.messaging import inbound
from smsnodes_hub.messaging.messages import INBOUND_SENDER_PURPOSE, INBOUND_TEXT_PURPOSE
from smsnodes_hub.timefmt import iso


def render(principal: Principal, row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "from": open_or_none(principal, row["sender"], INBOUND_SENDER_PURPOSE),
        "message": open_or_none(principal, row["body"], INBOUND_TEXT_PURPOSE),
        "receivedAt": iso(row["received_at"]),
        "createdAt": iso(row["created_at"]),
        "deviceId": row["device_id"],
    }


async def list_inbound(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    sender = request.query.get("from")
    mac = None
    if sender is not None:
        # Spelled as the hub stores senders: numbers cleaned, sender IDs trimmed.
        stored = protocol.sender(sender)
        if stored is None:
            raise InvalidRequest("from must be a phone number or sender name of 1 to "
                                 f"{protocol.MAX_SENDER} characters")
        mac = principal.number_mac(stored)
    filters = inbound.InboundFilter(
        sender_mac=mac,
        since=time_param(request, "since"),
        until=time_param(request, "until"),
    )
    page = page_params(request)
    total, rows = await inbound.list_inbound(
        request.app[POOL], principal.account_id, filters, page.per_page, page.offset
    )
    return json_response(page.body([render(principal, row) for row in rows], total))


async def get_inbound(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    inbound_id = path_id(request, "Inbound message")
    row = await inbound.get_inbound(request.app[POOL], principal.account_id, inbound_id)
    if row is None:
        raise NotFound(f"Inbound message {inbound_id} not found")
    return json_response(render(principal, row))
