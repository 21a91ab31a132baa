"""Webhook registrations: POST/GET /api/webhooks, GET/PATCH/DELETE /api/webhooks/{id} and
GET /api/webhooks/{id}/deliveries. The signing secret is shown once, in the POST answer;
another account's webhooks are 404."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from smsnodes_hub import webhooks
from smsnodes_hub.api.auth import authenticate
from smsnodes_hub.api.body import read_json_object
from smsnodes_hub.api.errors import json_response
from smsnodes_hub.api.pagination import page_params, path_id
from smsnodes_hub.appkeys import POOL, SETTINGS, WEBHOOK_WORKER
from smsnodes_hub.errors import InvalidRequest, NotFound
from smsnodes_hub.timefmt import iso

NOTHING_TO_CHANGE = "Nothing to change: give url, events or active"


def describe(hook: webhooks.Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "events": hook.events,
        "active": hook.active,
        "disabledReason": hook.disabled_reason,
        "createdAt": iso(hook.created_at),
        "updatedAt": iso(hook.updated_at),
        "lastSuccessAt": iso(hook.last_success_at),
        "failingSince": iso(hook.failing_since),
    }


def _not_found(webhook_id: int) -> NotFound:
    return NotFound(f"Webhook {webhook_id} not found")


async def create_webhook(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await read_json_object(request)
    settings = request.app[SETTINGS].webhooks
    events = webhooks.check_events(body.get("events"))
    url = await webhooks.check_url(body.get("url"), settings)
    hook, secret = await webhooks.create(request.app[POOL], principal, url, events,
                                         request.app[WEBHOOK_WORKER].keys.require())
    return json_response({**describe(hook), "secret": secret}, status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    found = await webhooks.list_webhooks(request.app[POOL], principal.account_id)
    return json_response({"data": [describe(hook) for hook in found]})


async def get_webhook(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    webhook_id = path_id(request, "Webhook")
    hook = await webhooks.get_webhook(request.app[POOL], principal.account_id, webhook_id)
    if hook is None:
        raise _not_found(webhook_id)
    return json_response(describe(hook))


async def update_webhook(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    webhook_id = path_id(request, "Webhook")
    body = await read_json_object(request)
    if not body.keys() & {"url", "events", "active"}:
        raise InvalidRequest(NOTHING_TO_CHANGE)
    active = body.get("active")
    if "active" in body and not isinstance(active, bool):
        raise InvalidRequest("active must be true or false")
    events = webhooks.check_events(body["events"]) if "events" in body else None
    url = (await webhooks.check_url(body["url"], request.app[SETTINGS].webhooks)
           if "url" in body else None)
    hook = await webhooks.update_webhook(
        request.app[POOL], principal.account_id, webhook_id, url=url, events=events,
        active=active,
    )
    if hook is None:
        raise _not_found(webhook_id)
    if active:
        request.app[WEBHOOK_WORKER].wake()  # what waited for the webhook goes now
    return json_response(describe(hook))


async def delete_webhook(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    webhook_id = path_id(request, "Webhook")
    if not await webhooks.delete_webhook(request.app[POOL], principal.account_id, webhook_id):
        raise _not_found(webhook_id)
    return json_response({"id": webhook_id, "deleted": True})


async def list_deliveries(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    webhook_id = path_id(request, "Webhook")
    state = request.query.get("state")
    if state is not None and state not in webhooks.DELIVERY_STATES:
        raise InvalidRequest(f"state must be one of {', '.join(webhooks.DELIVERY_STATES)}")
    page = page_params(request)
    found = await webhooks.list_deliveries(
        request.app[POOL], principal.account_id, webhook_id, state, page.per_page, page.offset
    )
    if found is None:
        raise _not_found(webhook_id)
    total, rows = found
    return json_response(page.body([
        {
            "id": row["id"],
            "eventId": webhooks.event_id(row["event_id"]),
            "type": row["event_type"],
            "state": row["state"],
            "createdAt": iso(row["created_at"]),
            "nextAttemptAt": iso(row["next_attempt_at"]) if row["state"] == "pending" else None,
            "deliveredAt": iso(row["delivered_at"]),
            "attempts": webhooks.describe_attempts(row["attempts"]),
        }
        for row in rows
    ], total))
