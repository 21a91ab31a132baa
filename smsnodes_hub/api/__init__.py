"""HTTP API: one module per resource; `setup` wires their routes."""

from __future__ import annotations

from aiohttp import web

from smsnodes_hub.api import (
    device,
    devices,
    health,
    inbound,
    messages,
    openapi,
    quota,
    send_sms,
    tokens,
    webhooks,
)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/health", health.get_health)
    app.router.add_post("/api/send-sms", send_sms.post_send_sms)
    app.router.add_get("/api/messages", messages.list_messages)
    app.router.add_get("/api/messages/{id}", messages.get_message)
    app.router.add_delete("/api/messages/{id}", messages.cancel_message)
    app.router.add_post("/api/tokens", tokens.create_token)
    app.router.add_get("/api/tokens", tokens.list_tokens)
    app.router.add_delete("/api/tokens/{id}", tokens.revoke_token)
    app.router.add_get("/api/device", device.get_device)
    app.router.add_put("/api/device/pacing", device.put_pacing)
    app.router.add_post("/api/devices", devices.add_device)
    app.router.add_get("/api/devices", devices.list_devices)
    app.router.add_delete("/api/devices/{id}", devices.remove_device)
    app.router.add_get("/api/quota", quota.get_quota)
    app.router.add_get("/api/inbound", inbound.list_inbound)
    app.router.add_get("/api/inbound/{id}", inbound.get_inbound)
    app.router.add_post("/api/webhooks", webhooks.create_webhook)
    app.router.add_get("/api/webhooks", webhooks.list_webhooks)
    app.router.add_get("/api/webhooks/{id}", webhooks.get_webhook)
    app.router.add_patch("/api/webhooks/{id}", webhooks.update_webhook)
    app.router.add_delete("/api/webhooks/{id}", webhooks.delete_webhook)
    app.router.add_get("/api/webhooks/{id}/deliveries", webhooks.list_deliveries)
    app.router.add_get("/api/openapi.json", openapi.get_openapi)
