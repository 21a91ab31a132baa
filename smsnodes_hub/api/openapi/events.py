"""What the hub POSTs to webhooks: one OpenAPI 3.1 `webhooks` entry per event, with the
Standard Webhooks signature headers (schemas in webhook_schemas.py)."""

from __future__ import annotations

from smsnodes_hub.api.openapi.builders import Example, Json, request
from smsnodes_hub.api.openapi.webhook_schemas import (
    DEVICE_EVENTS,
    EVENT_ID_PATTERN,
    MESSAGE_EVENTS,
)

EVENT_ID = "evt_da850f5b7c60459fb9a6730be43ea22f"
EVENT_SMS: Json = {
    "id": "evt_64f608a728604b7e81ed14fe400e2702", "type": "sms.received",
    "createdAt": "2026-11-21T10:31:02.410Z",
    "data": {"inboundId": 88, "from": "+1234567890", "message": "Yes, see you at 9.",
             "receivedAt": "2026-11-21T10:31:02.000Z", "deviceId": 1,
             "username": "shop-phone-1", "redacted": []},
}
EVENT_DELIVERED: Json = {
    "id": EVENT_ID, "type": "message.delivered", "createdAt": "2026-11-21T10:00:04.310Z",
    "data": {"messageId": 123, "to": "+1234567890", "status": "delivered", "error": None,
             "attempt": 1, "message": "Your order has shipped.", "deviceId": 1,
             "username": "shop-phone-1", "redacted": []},
}
EVENT_FAILED: Json = {
    "id": "evt_0b6f1c3e9d2a4f58b7c6e5d4c3b2a190", "type": "message.failed",
    "createdAt": "2026-11-21T10:05:02.900Z",
    "data": {"messageId": 124, "to": "+0987654321", "status": "failed",
             "error": "RESULT_ERROR_NULL_PDU", "attempt": 1, "message": "Réunion à 15h",
             "deviceId": 1, "username": "shop-phone-1", "redacted": []},
}
# No key of the account was in memory (its phone offline since a restart): sent on time,
# without the number and the text.
EVENT_EXPIRED_REDACTED: Json = {
    "id": "evt_7c2d9e0f1a3b4c5d8e6f7a8b9c0d1e2f", "type": "message.expired",
    "createdAt": "2026-11-21T11:00:00.250Z",
    "data": {"messageId": 125, "status": "expired", "error": None, "attempt": 1,
             "deviceId": 1, "username": "shop-phone-1", "redacted": ["to", "message"]},
}
EVENT_SMS_REDACTED: Json = {
    "id": "evt_1f0e9d8c7b6a4f5e9d3c2b1a0f9e8d7c", "type": "sms.received",
    "createdAt": "2026-11-21T10:31:02.410Z",
    "data": {"inboundId": 89, "receivedAt": "2026-11-21T10:31:02.000Z", "deviceId": 1,
             "username": "shop-phone-1", "redacted": ["from", "message"]},
}
EVENT_OFFLINE: Json = {
    "id": "evt_5a1e0c4b7f2d4e3a9c8b6d5e4f3a2b1c", "type": "device.offline",
    "createdAt": "2026-11-21T12:01:00.000Z",
    "data": {"deviceId": 1, "username": "shop-phone-1"},
}
DESCRIPTION = (
    "POSTed as JSON to every active webhook of the account that subscribes to the "
    "event, as soon as it happens. Verify the signature (any Standard Webhooks library "
    "does), answer 2xx quickly, and ignore an `id` you have seen: delivery is at least "
    "once. Any other answer, a redirect or no answer within `webhooks.timeout` (10 s) is "
    "retried with the same `id`. 410 disables the webhook. When no key of the account is "
    "in the hub's memory (its phone is offline since a restart, say), numbers and texts "
    "are left out and `data.redacted` names them; a retry made with the key in memory "
    "carries them."
)


def _header(name: str, description: str, schema: Json, example: str) -> Json:
    return {"name": name, "in": "header", "required": True, "description": description,
            "schema": schema, "example": example}


SIGNATURE_HEADERS = [
    _header("webhook-id", "The event's id (the body's `id`): the same on every retry.",
            {"type": "string", "pattern": EVENT_ID_PATTERN}, EVENT_ID),
    _header("webhook-timestamp", "When this attempt was signed, in Unix seconds. Refuse "
            "one more than 5 minutes from your clock.", {"type": "string",
                                                         "pattern": r"^\d+$"}, "1763719204"),
    _header("webhook-signature", "`v1,` and the base64 HMAC-SHA256 of "
            "`{webhook-id}.{webhook-timestamp}.{body}`, keyed with the base64-decoded part of "
            "the secret after `whsec_`. Compare in constant time.",
            {"type": "string", "pattern": r"^v1,[A-Za-z0-9+/]{43}=$"},
            "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="),
]


def _event(summary: str, schema: str, *examples: Example) -> Json:
    return {"post": {
        "tags": ["Webhooks"],
        "summary": summary,
        "description": DESCRIPTION,
        "parameters": SIGNATURE_HEADERS,
        "requestBody": request("The event.", schema, *examples),
        "responses": {
            "2XX": {"description": "Received: not sent again."},
            "410": {"description": "Gone: the webhook is disabled (re-activate it with "
                                   "PATCH)."},
            "default": {"description": "Not received: retried with backoff."},
        },
    }}


def _message_examples(name: str) -> list[Example]:
    status = name.removeprefix("message.")
    if name == "message.delivered":
        return [("delivered", "Delivered", EVENT_DELIVERED)]
    if name == "message.failed":
        return [("failed", "Failed for good", EVENT_FAILED)]
    if name == "message.expired":
        return [("expired", "Expired", {**EVENT_DELIVERED, "type": name, "data": {
                    **EVENT_DELIVERED["data"], "status": status}}),
                ("redacted", "Expired, no key in memory: no number, no text",
                 EVENT_EXPIRED_REDACTED)]
    return [(status, status.capitalize(), {**EVENT_DELIVERED, "type": name,
                                           "data": {**EVENT_DELIVERED["data"],
                                                    "status": status}})]


def events() -> Json:
    """The document's `webhooks`: every event the hub can POST."""
    out: Json = {"sms.received": _event(
        "A phone received an SMS", "SmsReceivedWebhookEvent", ("reply", "A reply", EVENT_SMS),
        ("redacted", "No key in memory: no sender, no text", EVENT_SMS_REDACTED))}
    for name in MESSAGE_EVENTS:
        out[name] = _event(f"A recipient's message is {name.removeprefix('message.')}",
                           "MessageWebhookEvent", *_message_examples(name))
    for name in DEVICE_EVENTS:
        state = name.removeprefix("device.")
        out[name] = _event(f"A phone is {state}", "DeviceWebhookEvent",
                           (state, state.capitalize(), {**EVENT_OFFLINE, "type": name}))
    return out
