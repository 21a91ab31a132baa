"""Component schemas of received SMS (/api/inbound), webhook registrations and their
delivery log (/api/webhooks), and the events the hub POSTs (events.py)."""

from __future__ import annotations

from smsnodes_hub import webhooks
from smsnodes_hub.api.openapi.builders import (
    NUMBER_PATTERN,
    Json,
    gone,
    list_of,
    obj,
    page_of,
    ref,
    timestamp,
)
from smsnodes_hub.device.protocol import MAX_SENDER
from smsnodes_hub.webhooks.payloads import INBOUND_SEALED, MESSAGE_SEALED

EVENT_ID_PATTERN = r"^evt_[0-9a-f]{32}$"
SECRET_PATTERN = r"^whsec_[A-Za-z0-9+/]{43}=$"  # noqa: S105 - a pattern
MESSAGE_EVENTS = [e for e in webhooks.EVENTS if e.startswith("message.")]
DEVICE_EVENTS = [e for e in webhooks.EVENTS if e.startswith("device.")]


def schemas() -> Json:
    event_type = {"type": "string", "enum": list(webhooks.EVENTS)}
    hook_properties: Json = {
        "id": {"type": "integer", "description": "The webhook's id."},
        "url": {"type": "string", "format": "uri", "description": "Where events are POSTed."},
        "events": {"type": "array", "items": ref("WebhookEventType"), "minItems": 1,
                   "uniqueItems": True, "description": "The events sent to it."},
        "active": {"type": "boolean", "description": "false: nothing is sent (disabled by "
                   "its owner, by a 410 answer, or after failing too long)."},
        "disabledReason": {"type": ["string", "null"], "description": "Why it is inactive, "
                           "else null."},
        "createdAt": timestamp("When it was registered."),
        "updatedAt": timestamp("When it last changed."),
        "lastSuccessAt": timestamp("The last delivery answered 2xx, or null.",
                                    nullable=True),
        "failingSince": timestamp("The first failure since the last success, or null. "
                                   "Failing for `webhooks.disable_after_hours` (72) disables "
                                   "the webhook.", nullable=True),
    }
    hook_required = list(hook_properties)
    device_data = {
        "deviceId": {"type": "integer", "description": "The phone concerned."},
        "username": {"type": ["string", "null"], "description": "Its username."},
    }
    number = {"type": ["string", "null"], "pattern": NUMBER_PATTERN}

    def redacted(fields: tuple[str, ...]) -> Json:
        return {"type": "array", "items": {"type": "string", "enum": list(fields)},
                "uniqueItems": True, "description": (
                    "The fields left out of this delivery because the account's key was "
                    "not in the memory of the hub process that made it (no phone of the "
                    "account connected to it, no recent authenticated call: see "
                    "docs/webhooks.md): `[]` when nothing is left out. The event is sent on "
                    "time all the same; read the rest with the API. Can name: "
                    + ", ".join(f"`{f}`" for f in fields) + ".")}

    # A sender is a cleaned number or, for alphanumeric sender IDs, the name as received.
    sender = {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_SENDER}

    def envelope(types: list[str], data: str, description: str) -> Json:
        return obj({
            "id": {"type": "string", "pattern": EVENT_ID_PATTERN, "description":
                   "The event's id, also in the `webhook-id` header; the same on every "
                   "retry: use it to ignore a repeat."},
            "type": {"type": "string", "enum": types},
            "createdAt": timestamp("When the event happened."),
            "data": ref(data),
        }, ["id", "type", "createdAt", "data"], description)

    return {
        "InboundMessage": obj({
            "id": {"type": "integer"},
            "from": {**sender, "description": "The sender: a phone number cleaned like "
                     "phoneNumbers, or a sender ID such as `AMAZON` as received, trimmed (null "
                     "if its stored ciphertext cannot be opened)."},
            "message": {"type": ["string", "null"], "description": "The text (null if it "
                        "cannot be opened)."},
            "receivedAt": timestamp("When the phone received it."),
            "createdAt": timestamp("When the hub stored it."),
            "deviceId": {"type": "integer", "description": "The phone that received it."},
        }, ["id", "from", "message", "receivedAt", "createdAt", "deviceId"],
            "One received SMS, decrypted for its owner."),
        "InboundPage": page_of("InboundMessage", order="Newest first (by `receivedAt`).",
                               total="Matching items on all pages.",
                               description="One page of received SMS."),
        "WebhookEventType": {**event_type, "description": "sms.received: the phone received "
                             "an SMS. message.sent, message.delivered, message.failed, "
                             "message.expired, message.cancelled: one recipient of a message "
                             "reached that outcome (a failure that will be retried is not one)."
                             " device.online, device.offline: a phone connected, or stayed "
                             "away longer than `webhooks.offline_grace`."},
        "CreateWebhookRequest": obj({
            "url": {"type": "string", "maxLength": webhooks.MAX_URL, "description":
                    "An `https://` URL of a public address (no user name or password in it)."
                    " `http://` needs `webhooks.allow_http`; loopback, private, link-local "
                    "and metadata addresses need `webhooks.allow_private`."},
            "events": {"type": "array", "items": ref("WebhookEventType"), "minItems": 1,
                       "uniqueItems": True, "description": "The events to send."},
        }, ["url", "events"], "A new webhook."),
        "UpdateWebhookRequest": {
            "type": "object",
            "description": "Give at least one field; what is not given stays.",
            "minProperties": 1,
            "properties": {
                "url": {"type": "string", "maxLength": webhooks.MAX_URL,
                        "description": "A new URL (the same rules as at creation)."},
                "events": {"type": "array", "items": ref("WebhookEventType"),
                           "minItems": 1, "uniqueItems": True,
                           "description": "The new list of events."},
                "active": {"type": "boolean", "description": "true re-activates a disabled "
                           "webhook (clearing `disabledReason` and `failingSince`; what "
                           "waited is sent at once); false pauses it."},
            },
        },
        "Webhook": obj(hook_properties, hook_required,
                        "A webhook (never its secret)."),
        "NewWebhook": obj(
            {**hook_properties, "secret": {
                "type": "string", "pattern": SECRET_PATTERN,
                "description": "The signing secret, Standard Webhooks format: `whsec_` and "
                               "the base64 of 32 random bytes. Shown in this answer only."}},
            [*hook_required, "secret"], "The new webhook, with its signing secret."),
        "WebhookList": list_of("Webhook", "The account's webhooks, oldest first."),
        "DeletedWebhook": gone("deleted", "The webhook and its delivery log are gone."),
        "WebhookAttempt": obj({
            "attempt": {"type": "integer", "minimum": 1},
            "at": timestamp("When the request started."),
            "durationMs": {"type": "integer", "minimum": 0},
            "statusCode": {"type": ["integer", "null"], "description": "The receiver's HTTP "
                           "status, or null when there was no answer."},
            "error": {"type": ["string", "null"], "description": "Why it failed (`HTTP 500`, "
                      "`no answer within 10 s`, `refused: ...` for a target the settings no longer "
                      "allow), or null for a success."},
            "nextRetryAt": timestamp("When the next attempt is due, or null.",
                                      nullable=True),
        }, ["attempt", "at", "durationMs", "statusCode", "error", "nextRetryAt"],
            "One attempt to deliver an event."),
        "WebhookDelivery": obj({
            "id": {"type": "integer"},
            "eventId": {"type": "string", "pattern": EVENT_ID_PATTERN},
            "type": ref("WebhookEventType"),
            "state": {"type": "string", "enum": list(webhooks.DELIVERY_STATES),
                      "description": "pending (to be tried, or retried), delivered (answered "
                                     "2xx), failed (given up)."},
            "createdAt": timestamp("When the event happened."),
            "nextAttemptAt": timestamp("When a pending delivery is next due.",
                                        nullable=True),
            "deliveredAt": timestamp("When it was delivered, or null.", nullable=True),
            "attempts": {"type": "array", "items": ref("WebhookAttempt"),
                         "description": "Every attempt, oldest first."},
        }, ["id", "eventId", "type", "state", "createdAt", "nextAttemptAt", "deliveredAt",
            "attempts"], "One event for this webhook, with its attempts."),
        "DeliveryPage": page_of("WebhookDelivery", order="Newest first.",
                                total="Matching items on all pages.",
                                description="One page of the delivery log."),
        "MessageEventData": obj({
            "messageId": {"type": "integer", "description": "For GET /api/messages/{id}."},
            "to": {**number, "description": "The recipient this outcome is about (absent "
                   "when `redacted` names it)."},
            "status": {"type": "string", "enum": [e.removeprefix("message.")
                                                  for e in MESSAGE_EVENTS]},
            "error": {"type": ["string", "null"], "description": "The phone's reason for a "
                      "failure, else null."},
            "attempt": {"type": "integer", "minimum": 1},
            "message": {"type": ["string", "null"], "description": "The message's text "
                        "(absent when `redacted` names it)."},
            **device_data,
            "redacted": redacted(MESSAGE_SEALED),
        }, ["messageId", "status", "error", "attempt", "deviceId", "username", "redacted"],
            "A message event's data. `to` and `message` are there unless `redacted` lists "
            "them."),
        "SmsReceivedData": obj({
            "inboundId": {"type": "integer", "description": "For GET /api/inbound/{id}."},
            "from": {**sender, "description": "The sender (a number or a sender ID; absent "
                     "when `redacted` names it)."},
            "message": {"type": ["string", "null"], "description": "The text (absent when "
                        "`redacted` names it)."},
            "receivedAt": timestamp("When the phone received it."),
            **device_data,
            "redacted": redacted(INBOUND_SEALED),
        }, ["inboundId", "receivedAt", "deviceId", "username", "redacted"],
            "An sms.received event's data. `from` and `message` are there unless `redacted` "
            "lists them."),
        "DeviceEventData": obj(device_data, ["deviceId", "username"],
                                "A device event's data."),
        "MessageWebhookEvent": envelope(MESSAGE_EVENTS, "MessageEventData", "A message event."),
        "SmsReceivedWebhookEvent": envelope(["sms.received"], "SmsReceivedData",
                                     "A received SMS."),
        "DeviceWebhookEvent": envelope(DEVICE_EVENTS, "DeviceEventData", "A device event."),
    }
