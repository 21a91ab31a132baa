"""The OpenAPI description of received SMS (/api/inbound), webhook registrations
(/api/webhooks) and the events the hub POSTs to them (OpenAPI 3.1 `webhooks`). Merged into
the document by api/openapi.py; it uses that module's builders."""

from __future__ import annotations

from typing import Any

from smsnodes_hub import webhooks
from smsnodes_hub.api.body import TOO_LARGE
from smsnodes_hub.api.openapi import (
    BASIC_OR_BEARER,
    NOT_AN_OBJECT,
    NUMBER_PATTERN,
    Json,
    _auth_errors,
    _compact,
    _curl,
    _error,
    _json,
    _moment,
    _obj,
    _param,
    _ref,
    _timestamp,
)
from smsnodes_hub.api.pagination import DEFAULT_PER_PAGE, MAX_PAGE, MAX_PER_PAGE
from smsnodes_hub.api.webhooks import NOTHING_TO_CHANGE
from smsnodes_hub.device.protocol import MAX_SENDER

EVENT_ID_PATTERN = r"^evt_[0-9a-f]{32}$"
SECRET_PATTERN = r"^whsec_[A-Za-z0-9+/]{43}=$"  # noqa: S105 - a pattern
MESSAGE_EVENTS = [e for e in webhooks.EVENTS if e.startswith("message.")]
DEVICE_EVENTS = [e for e in webhooks.EVENTS if e.startswith("device.")]
EVENT_NAMES = ", ".join(webhooks.EVENTS)
PRIVATE_REFUSED = ("url must point to a public address: 10.0.0.8 is loopback, private, "
                   "link-local or otherwise internal (needs webhooks.allow_private)")

TAGS = [
    {"name": "Inbound", "description": "Extension: SMS the phones received."},
    {"name": "Webhooks", "description": (
        "Extension: your server is told of each event (a received SMS, a message's outcome, "
        "a phone going on- or offline) by a signed POST, retried until it answers 2xx. The "
        "payloads are described under *Webhooks* (`webhooks` in this document); signatures "
        "follow the Standard Webhooks specification (standardwebhooks.com), so its "
        "libraries verify them.")},
]

# -- Example values -------------------------------------------------------------------------

INBOUND = {"id": 88, "from": "+1234567890", "message": "Yes, see you at 9.",
           "receivedAt": "2026-11-21T10:31:02.000Z", "createdAt": "2026-11-21T10:31:02.410Z",
           "deviceId": 1}
INBOUND_OLDER = {"id": 87, "from": "+0987654321", "message": "STOP",
                 "receivedAt": "2026-11-21T09:12:45.000Z",
                 "createdAt": "2026-11-21T09:12:45.300Z", "deviceId": 1}
WEBHOOK = {
    "id": 5,
    "url": "https://yourapp.example/webhooks/sms",
    "events": ["sms.received", "message.delivered"],
    "active": True,
    "disabledReason": None,
    "createdAt": "2026-11-21T09:00:00.000Z",
    "updatedAt": "2026-11-21T09:00:00.000Z",
    "lastSuccessAt": "2026-11-21T10:31:02.650Z",
    "failingSince": None,
}
SECRET = "whsec_txuiP92T6GSWKeRlloawqG8cLz5bXlfYXHU5NurDRGg="  # noqa: S105 - an example
DISABLED = {**WEBHOOK, "active": False,
            "disabledReason": "no successful delivery for 72 hours",
            "updatedAt": "2026-11-24T10:00:00.000Z", "lastSuccessAt": None,
            "failingSince": "2026-11-21T10:00:00.000Z"}
EVENT_ID = "evt_da850f5b7c60459fb9a6730be43ea22f"
DELIVERY = {
    "id": 311,
    "eventId": EVENT_ID,
    "type": "message.delivered",
    "state": "delivered",
    "createdAt": "2026-11-21T10:00:04.310Z",
    "nextAttemptAt": None,
    "deliveredAt": "2026-11-21T10:00:24.980Z",
    "attempts": [
        {"attempt": 1, "at": "2026-11-21T10:00:04.320Z", "durationMs": 10004,
         "statusCode": None, "error": "no answer within 10 s",
         "nextRetryAt": "2026-11-21T10:00:24.900Z"},
        {"attempt": 2, "at": "2026-11-21T10:00:24.910Z", "durationMs": 70,
         "statusCode": 200, "error": None, "nextRetryAt": None},
    ],
}
DELIVERY_PENDING = {
    "id": 312,
    "eventId": "evt_64f608a728604b7e81ed14fe400e2702",
    "type": "sms.received",
    "state": "pending",
    "createdAt": "2026-11-21T10:31:02.410Z",
    "nextAttemptAt": "2026-11-21T10:31:22.000Z",
    "deliveredAt": None,
    "attempts": [{"attempt": 1, "at": "2026-11-21T10:31:02.500Z", "durationMs": 35,
                  "statusCode": 503, "error": "HTTP 503",
                  "nextRetryAt": "2026-11-21T10:31:22.000Z"}],
}
EVENT_SMS = {"id": "evt_64f608a728604b7e81ed14fe400e2702", "type": "sms.received",
             "createdAt": "2026-11-21T10:31:02.410Z",
             "data": {"inboundId": 88, "from": "+1234567890", "message": "Yes, see you at 9.",
                      "receivedAt": "2026-11-21T10:31:02.000Z", "deviceId": 1,
                      "username": "shop-phone-1"}}
EVENT_DELIVERED = {"id": EVENT_ID, "type": "message.delivered",
                   "createdAt": "2026-11-21T10:00:04.310Z",
                   "data": {"messageId": 123, "to": "+1234567890", "status": "delivered",
                            "error": None, "attempt": 1, "message": "Your order has shipped.",
                            "deviceId": 1, "username": "shop-phone-1"}}
EVENT_FAILED = {"id": "evt_0b6f1c3e9d2a4f58b7c6e5d4c3b2a190", "type": "message.failed",
                "createdAt": "2026-11-21T10:05:02.900Z",
                "data": {"messageId": 124, "to": "+0987654321", "status": "failed",
                         "error": "RESULT_ERROR_NULL_PDU", "attempt": 1,
                         "message": "Réunion à 15h", "deviceId": 1,
                         "username": "shop-phone-1"}}
EVENT_OFFLINE = {"id": "evt_5a1e0c4b7f2d4e3a9c8b6d5e4f3a2b1c", "type": "device.offline",
                 "createdAt": "2026-11-21T12:01:00.000Z",
                 "data": {"deviceId": 1, "username": "shop-phone-1"}}


# -- Schemas ----------------------------------------------------------------------------------

def schemas() -> Json:
    event_type = {"type": "string", "enum": list(webhooks.EVENTS)}
    hook_properties: Json = {
        "id": {"type": "integer", "description": "The webhook's id."},
        "url": {"type": "string", "format": "uri", "description": "Where events are POSTed."},
        "events": {"type": "array", "items": _ref("WebhookEventType"), "minItems": 1,
                   "uniqueItems": True, "description": "The events sent to it."},
        "active": {"type": "boolean", "description": "false: nothing is sent (disabled by "
                   "its owner, by a 410 answer, or after failing too long)."},
        "disabledReason": {"type": ["string", "null"], "description": "Why it is inactive, "
                           "else null."},
        "createdAt": _timestamp("When it was registered."),
        "updatedAt": _timestamp("When it last changed."),
        "lastSuccessAt": _timestamp("The last delivery answered 2xx, or null.",
                                    nullable=True),
        "failingSince": _timestamp("The first failure since the last success, or null. "
                                   "Failing for `webhooks.disable_after_hours` (72) disables "
                                   "the webhook.", nullable=True),
    }
    hook_required = list(hook_properties)
    page = {
        "page": {"type": "integer", "minimum": 1},
        "perPage": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
        "total": {"type": "integer", "minimum": 0, "description": "Matching items on all "
                  "pages."},
        "totalPages": {"type": "integer", "minimum": 0},
    }
    device_data = {
        "deviceId": {"type": "integer", "description": "The phone concerned."},
        "username": {"type": ["string", "null"], "description": "Its username."},
    }
    number = {"type": ["string", "null"], "pattern": NUMBER_PATTERN}
    # A sender is a cleaned number or, for alphanumeric sender IDs, the name as received.
    sender = {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_SENDER}

    def envelope(types: list[str], data: str, description: str) -> Json:
        return _obj({
            "id": {"type": "string", "pattern": EVENT_ID_PATTERN, "description":
                   "The event's id, also in the `webhook-id` header; the same on every "
                   "retry: use it to ignore a repeat."},
            "type": {"type": "string", "enum": types},
            "createdAt": _timestamp("When the event happened."),
            "data": _ref(data),
        }, ["id", "type", "createdAt", "data"], description)

    return {
        "InboundMessage": _obj({
            "id": {"type": "integer"},
            "from": {**sender, "description": "The sender: a phone number cleaned like "
                     "phoneNumbers, or a sender ID such as `AMAZON` as received, trimmed (null "
                     "if its stored ciphertext cannot be opened)."},
            "message": {"type": ["string", "null"], "description": "The text (null if it "
                        "cannot be opened)."},
            "receivedAt": _timestamp("When the phone received it."),
            "createdAt": _timestamp("When the hub stored it."),
            "deviceId": {"type": "integer", "description": "The phone that received it."},
        }, ["id", "from", "message", "receivedAt", "createdAt", "deviceId"],
            "One received SMS, decrypted for its owner."),
        "InboundPage": _obj({"data": {"type": "array", "items": _ref("InboundMessage"),
                                      "description": "Newest first (by `receivedAt`)."},
                             **page}, ["data", "page", "perPage", "total", "totalPages"],
                            "One page of received SMS."),
        "WebhookEventType": {**event_type, "description": "sms.received: the phone received "
                             "an SMS. message.sent, message.delivered, message.failed, "
                             "message.expired, message.cancelled: one recipient of a message "
                             "reached that outcome (a failure that will be retried is not one)."
                             " device.online, device.offline: a phone connected, or stayed "
                             "away longer than `webhooks.offline_grace`."},
        "CreateWebhookRequest": _obj({
            "url": {"type": "string", "maxLength": webhooks.MAX_URL, "description":
                    "An `https://` URL of a public address (no user name or password in it)."
                    " `http://` needs `webhooks.allow_http`; loopback, private, link-local "
                    "and metadata addresses need `webhooks.allow_private`."},
            "events": {"type": "array", "items": _ref("WebhookEventType"), "minItems": 1,
                       "uniqueItems": True, "description": "The events to send."},
        }, ["url", "events"], "A new webhook."),
        "UpdateWebhookRequest": {
            "type": "object",
            "description": "Give at least one field; what is not given stays.",
            "minProperties": 1,
            "properties": {
                "url": {"type": "string", "maxLength": webhooks.MAX_URL,
                        "description": "A new URL (the same rules as at creation)."},
                "events": {"type": "array", "items": _ref("WebhookEventType"),
                           "minItems": 1, "uniqueItems": True,
                           "description": "The new list of events."},
                "active": {"type": "boolean", "description": "true re-activates a disabled "
                           "webhook (clearing `disabledReason` and `failingSince`; what "
                           "waited is sent at once); false pauses it."},
            },
        },
        "Webhook": _obj(hook_properties, hook_required,
                        "A webhook (never its secret)."),
        "NewWebhook": _obj(
            {**hook_properties, "secret": {
                "type": "string", "pattern": SECRET_PATTERN,
                "description": "The signing secret, Standard Webhooks format: `whsec_` and "
                               "the base64 of 32 random bytes. Shown in this answer only."}},
            [*hook_required, "secret"], "The new webhook, with its signing secret."),
        "WebhookList": _obj({"data": {"type": "array", "items": _ref("Webhook")}}, ["data"],
                            "The account's webhooks, oldest first."),
        "DeletedWebhook": _obj(
            {"id": {"type": "integer"}, "deleted": {"type": "boolean", "const": True}},
            ["id", "deleted"], "The webhook and its delivery log are gone."),
        "WebhookAttempt": _obj({
            "attempt": {"type": "integer", "minimum": 1},
            "at": _timestamp("When the request started."),
            "durationMs": {"type": "integer", "minimum": 0},
            "statusCode": {"type": ["integer", "null"], "description": "The receiver's HTTP "
                           "status, or null when there was no answer."},
            "error": {"type": ["string", "null"], "description": "Why it failed (`HTTP 500`, "
                      "`no answer within 10 s`, `refused: ...` for a target the settings no longer "
                      "allow), or null for a success."},
            "nextRetryAt": _timestamp("When the next attempt is due, or null.",
                                      nullable=True),
        }, ["attempt", "at", "durationMs", "statusCode", "error", "nextRetryAt"],
            "One attempt to deliver an event."),
        "WebhookDelivery": _obj({
            "id": {"type": "integer"},
            "eventId": {"type": "string", "pattern": EVENT_ID_PATTERN},
            "type": _ref("WebhookEventType"),
            "state": {"type": "string", "enum": list(webhooks.DELIVERY_STATES),
                      "description": "pending (to be tried, or retried), delivered (answered "
                                     "2xx), failed (given up)."},
            "createdAt": _timestamp("When the event happened."),
            "nextAttemptAt": _timestamp("When a pending delivery is next due (it also waits "
                                        "for its account's key: see docs/webhooks.md).",
                                        nullable=True),
            "deliveredAt": _timestamp("When it was delivered, or null.", nullable=True),
            "attempts": {"type": "array", "items": _ref("WebhookAttempt"),
                         "description": "Every attempt, oldest first."},
        }, ["id", "eventId", "type", "state", "createdAt", "nextAttemptAt", "deliveredAt",
            "attempts"], "One event for this webhook, with its attempts."),
        "DeliveryPage": _obj({"data": {"type": "array", "items": _ref("WebhookDelivery"),
                                       "description": "Newest first."}, **page},
                             ["data", "page", "perPage", "total", "totalPages"],
                             "One page of the delivery log."),
        "MessageEventData": _obj({
            "messageId": {"type": "integer"},
            "to": {**number, "description": "The recipient this outcome is about."},
            "status": {"type": "string", "enum": [e.removeprefix("message.")
                                                  for e in MESSAGE_EVENTS]},
            "error": {"type": ["string", "null"], "description": "The phone's reason for a "
                      "failure, else null."},
            "attempt": {"type": "integer", "minimum": 1},
            "message": {"type": ["string", "null"], "description": "The message's text."},
            **device_data,
        }, ["messageId", "to", "status", "error", "attempt", "message", "deviceId",
            "username"], "A message event's data."),
        "SmsReceivedData": _obj({
            "inboundId": {"type": "integer", "description": "For GET /api/inbound/{id}."},
            "from": {**sender, "description": "The sender (a number or a sender ID)."},
            "message": {"type": ["string", "null"]},
            "receivedAt": _timestamp("When the phone received it."),
            **device_data,
        }, ["inboundId", "from", "message", "receivedAt", "deviceId", "username"],
            "An sms.received event's data."),
        "DeviceEventData": _obj(device_data, ["deviceId", "username"],
                                "A device event's data."),
        "MessageWebhookEvent": envelope(MESSAGE_EVENTS, "MessageEventData", "A message event."),
        "SmsReceivedWebhookEvent": envelope(["sms.received"], "SmsReceivedData",
                                     "A received SMS."),
        "DeviceWebhookEvent": envelope(DEVICE_EVENTS, "DeviceEventData", "A device event."),
    }


def parameters() -> Json:
    return {
        "InboundId": {"name": "id", "in": "path", "required": True,
                      "description": "The received SMS's `id` (also `inboundId` in its "
                                     "webhook event). Another account's is a 404.",
                      "schema": {"type": "integer", "minimum": 1}, "example": 88},
        "WebhookId": {"name": "id", "in": "path", "required": True,
                      "description": "The webhook's `id`. Another account's is a 404.",
                      "schema": {"type": "integer", "minimum": 1}, "example": 5},
    }


# -- Operations -------------------------------------------------------------------------------

def _query(name: str, description: str, schema: Json, example: Any) -> Json:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema, "example": example}


PAGE_PARAMS = [
    _query("page", "The page, from 1. Past the last page `data` is empty.",
           {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}, 1),
    _query("per_page", "Items per page.",
           {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE,
            "default": DEFAULT_PER_PAGE}, 50),
]
BAD_PER_PAGE = ("Bad per_page", f"per_page must be a whole number from 1 to {MAX_PER_PAGE}")


def _list_inbound(base: str) -> Json:
    return {
        "tags": ["Inbound"],
        "operationId": "listInbound",
        "summary": "List received SMS",
        "description": "Extension. The SMS the account's phones received, newest first, in "
                       "pages, decrypted for their owner. Filters combine.",
        "security": BASIC_OR_BEARER,
        "parameters": [
            _query("from", "Only SMS from this sender: a number is cleaned like "
                           "phoneNumbers (`+1 234 567-890` matches `+1234567890`), a sender "
                           "ID such as `AMAZON` matches as written.",
                   {"type": "string"}, "+1234567890"),
            _query("since", "Only SMS received at or after this moment (ISO 8601).",
                   _moment("A moment."), "2026-11-21T00:00:00Z"),
            _query("until", "Only SMS received before this moment (ISO 8601).",
                   _moment("A moment."), "2026-11-22T00:00:00Z"),
            *PAGE_PARAMS,
        ],
        "responses": {
            "200": {"description": "One page.", "content": _json(
                _ref("InboundPage"),
                ("page", "The first page", {"data": [INBOUND, INBOUND_OLDER], "page": 1,
                                            "perPage": 2, "total": 3, "totalPages": 2}),
                ("empty", "Nothing matches", {"data": [], "page": 1,
                                              "perPage": DEFAULT_PER_PAGE, "total": 0,
                                              "totalPages": 0}),
            )},
            "400": _error("A query parameter is invalid (the message names it).",
                          ("Bad from", "from must be a phone number or sender name of 1 to "
                                       f"{MAX_SENDER} characters"),
                          ("Bad since", "since must be an ISO 8601 timestamp"),
                          BAD_PER_PAGE),
            **_auth_errors(),
        },
        "x-codeSamples": _curl(f"curl -sS -u 'shop-phone-1:correct horse' "
                               f"'{base}/api/inbound?from=%2B1234567890&per_page=50'"),
    }


def _get_inbound(base: str) -> Json:
    return {
        "tags": ["Inbound"],
        "operationId": "getInbound",
        "summary": "Read a received SMS",
        "description": "Extension. One received SMS of the account.",
        "security": BASIC_OR_BEARER,
        "parameters": [_param("InboundId")],
        "responses": {
            "200": {"description": "The SMS.", "content": _json(
                _ref("InboundMessage"), ("received", "A reply", INBOUND))},
            "404": _error("No such SMS of this account.",
                          ("Not found", "Inbound message 88 not found")),
            **_auth_errors(),
        },
        "x-codeSamples": _curl(f"curl -sS -u 'shop-phone-1:correct horse' "
                               f"{base}/api/inbound/88"),
    }


CREATE_EXAMPLE = {"url": "https://yourapp.example/webhooks/sms",
                  "events": ["sms.received", "message.delivered"]}


def _create_webhook(base: str) -> Json:
    return {
        "tags": ["Webhooks"],
        "operationId": "createWebhook",
        "summary": "Register a webhook",
        "description": (
            "Extension. From now on, each chosen event of the account is POSTed to `url`, "
            "signed with the `secret` of this answer (shown only here: keep it). The URL is "
            "checked now (an IP address, or every address its host name resolves to, must "
            "be public) and again on every connection, as is the `https://` rule. At most "
            f"{webhooks.MAX_WEBHOOKS} per account."
        ),
        "security": BASIC_OR_BEARER,
        "requestBody": {
            "required": True,
            "description": "The receiver and its events.",
            "content": _json(_ref("CreateWebhookRequest"),
                             ("received", "Replies and delivery reports", CREATE_EXAMPLE),
                             ("presence", "Phone presence only", {
                                 "url": "https://status.example/hooks/phones",
                                 "events": ["device.online", "device.offline"]})),
        },
        "responses": {
            "201": {"description": "Registered.", "content": _json(
                _ref("NewWebhook"),
                ("created", "With its secret", {**WEBHOOK, "lastSuccessAt": None,
                                                "secret": SECRET}))},
            "400": _error(
                "A bad URL or list of events (the message names the problem).",
                ("Not https", "url must start with https://"),
                ("Private address", PRIVATE_REFUSED),
                ("Unknown event", f'events: unknown event "message.received": use '
                                  f"{EVENT_NAMES}"),
                ("No events", "events must name at least one event"),
                ("Not a JSON object", NOT_AN_OBJECT),
            ),
            "409": _error("The account has the most webhooks allowed.", (
                "Too many", f"an account has at most {webhooks.MAX_WEBHOOKS} webhooks: "
                            "delete one first")),
            "413": _error("The body is over 64 KiB.", ("Too large", TOO_LARGE)),
            **_auth_errors(),
        },
        "x-codeSamples": _curl(
            f"curl -sS -X POST -u 'shop-phone-1:correct horse' {base}/api/webhooks \\\n"
            "  -H 'Content-Type: application/json' \\\n"
            f"  -d '{_compact(CREATE_EXAMPLE)}'"
        ),
    }


def _list_webhooks(base: str) -> Json:
    return {
        "tags": ["Webhooks"],
        "operationId": "listWebhooks",
        "summary": "List webhooks",
        "description": "Extension. The account's webhooks, without their secrets.",
        "security": BASIC_OR_BEARER,
        "responses": {
            "200": {"description": "The webhooks.", "content": _json(
                _ref("WebhookList"), ("webhooks", "One active, one disabled",
                                      {"data": [WEBHOOK, {**DISABLED, "id": 6}]}))},
            **_auth_errors(),
        },
        "x-codeSamples": _curl(f"curl -sS -H 'Authorization: Bearer snh_...' "
                               f"{base}/api/webhooks"),
    }


def _get_webhook(base: str) -> Json:
    return {
        "tags": ["Webhooks"],
        "operationId": "getWebhook",
        "summary": "Read a webhook",
        "description": "Extension. One webhook, with why it is disabled if it is.",
        "security": BASIC_OR_BEARER,
        "parameters": [_param("WebhookId")],
        "responses": {
            "200": {"description": "The webhook.", "content": _json(
                _ref("Webhook"), ("active", "Active", WEBHOOK),
                ("disabled", "Disabled after failing for 72 hours", DISABLED))},
            "404": _error("No such webhook of this account.",
                          ("Not found", "Webhook 5 not found")),
            **_auth_errors(),
        },
        "x-codeSamples": _curl(f"curl -sS -u 'shop-phone-1:correct horse' "
                               f"{base}/api/webhooks/5"),
    }


def _update_webhook(base: str) -> Json:
    return {
        "tags": ["Webhooks"],
        "operationId": "updateWebhook",
        "summary": "Change or re-activate a webhook",
        "description": (
            "Extension. Change its URL or events, pause it (`active: false`), or re-activate "
            "it (`active: true`) after it was disabled: deliveries still pending are sent at "
            "once. Either every given field is valid and applied, or nothing changes."
        ),
        "security": BASIC_OR_BEARER,
        "parameters": [_param("WebhookId")],
        "requestBody": {
            "required": True,
            "description": "What to change.",
            "content": _json(_ref("UpdateWebhookRequest"),
                             ("reactivate", "Re-activate", {"active": True}),
                             ("events", "Other events", {"events": ["message.failed"]})),
        },
        "responses": {
            "200": {"description": "The webhook as it now stands.", "content": _json(
                _ref("Webhook"), ("reactivated", "Active again", WEBHOOK))},
            "400": _error("Nothing to change, or an invalid field.",
                          ("Nothing given", NOTHING_TO_CHANGE),
                          ("Bad active", "active must be true or false"),
                          ("Private address", PRIVATE_REFUSED)),
            "404": _error("No such webhook of this account.",
                          ("Not found", "Webhook 5 not found")),
            "413": _error("The body is over 64 KiB.", ("Too large", TOO_LARGE)),
            **_auth_errors(),
        },
        "x-codeSamples": _curl(
            f"curl -sS -X PATCH -u 'shop-phone-1:correct horse' {base}/api/webhooks/5 \\\n"
            "  -H 'Content-Type: application/json' -d '{\"active\": true}'"
        ),
    }


def _delete_webhook(base: str) -> Json:
    return {
        "tags": ["Webhooks"],
        "operationId": "deleteWebhook",
        "summary": "Delete a webhook",
        "description": "Extension. Nothing more is sent to it; its delivery log is deleted "
                       "too.",
        "security": BASIC_OR_BEARER,
        "parameters": [_param("WebhookId")],
        "responses": {
            "200": {"description": "Deleted.", "content": _json(
                _ref("DeletedWebhook"), ("deleted", "Deleted", {"id": 5, "deleted": True}))},
            "404": _error("No such webhook of this account.",
                          ("Not found", "Webhook 5 not found")),
            **_auth_errors(),
        },
        "x-codeSamples": _curl(f"curl -sS -X DELETE -u 'shop-phone-1:correct horse' "
                               f"{base}/api/webhooks/5"),
    }


def _list_deliveries(base: str) -> Json:
    return {
        "tags": ["Webhooks"],
        "operationId": "listWebhookDeliveries",
        "summary": "A webhook's delivery log",
        "description": (
            "Extension. The events sent (or to be sent) to this webhook, newest first, each "
            "with every attempt: status code or error, duration, and when the next retry is "
            "due. Failures are retried with exponential backoff for "
            "`webhooks.retry_for_hours` (72) from the first attempt."
        ),
        "security": BASIC_OR_BEARER,
        "parameters": [
            _param("WebhookId"),
            _query("state", "Only deliveries in this state.",
                   {"type": "string", "enum": list(webhooks.DELIVERY_STATES)}, "failed"),
            *PAGE_PARAMS,
        ],
        "responses": {
            "200": {"description": "One page.", "content": _json(
                _ref("DeliveryPage"),
                ("page", "A retry in progress and a delivered event", {
                    "data": [DELIVERY_PENDING, DELIVERY], "page": 1, "perPage": 25,
                    "total": 2, "totalPages": 1}),
            )},
            "400": _error("A query parameter is invalid.",
                          ("Bad state", "state must be one of pending, delivered, failed"),
                          BAD_PER_PAGE),
            "404": _error("No such webhook of this account.",
                          ("Not found", "Webhook 5 not found")),
            **_auth_errors(),
        },
        "x-codeSamples": _curl(f"curl -sS -u 'shop-phone-1:correct horse' "
                               f"'{base}/api/webhooks/5/deliveries?state=pending'"),
    }


def paths(base: str) -> Json:
    return {
        "/api/inbound": {"get": _list_inbound(base)},
        "/api/inbound/{id}": {"get": _get_inbound(base)},
        "/api/webhooks": {"post": _create_webhook(base), "get": _list_webhooks(base)},
        "/api/webhooks/{id}": {"get": _get_webhook(base), "patch": _update_webhook(base),
                               "delete": _delete_webhook(base)},
        "/api/webhooks/{id}/deliveries": {"get": _list_deliveries(base)},
    }


# -- What the hub sends (OpenAPI `webhooks`) ----------------------------------------------------

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


def _event(summary: str, schema: str, *examples: tuple[str, str, Any]) -> Json:
    return {"post": {
        "tags": ["Webhooks"],
        "summary": summary,
        "description": (
            "POSTed as JSON to every active webhook of the account that subscribes to the "
            "event. Verify the signature (any Standard Webhooks library does), answer 2xx "
            "quickly, and ignore an `id` you have seen: delivery is at least once. Any "
            "other answer, a redirect or no answer within `webhooks.timeout` (10 s) is "
            "retried with the same `id`. 410 disables the webhook."
        ),
        "parameters": SIGNATURE_HEADERS,
        "requestBody": {"required": True, "description": "The event.",
                        "content": _json(_ref(schema), *examples)},
        "responses": {
            "2XX": {"description": "Received: not sent again."},
            "410": {"description": "Gone: the webhook is disabled (re-activate it with "
                                   "PATCH)."},
            "default": {"description": "Not received: retried with backoff."},
        },
    }}


def events() -> Json:
    out: Json = {"sms.received": _event("A phone received an SMS", "SmsReceivedWebhookEvent",
                                        ("reply", "A reply", EVENT_SMS))}
    for name in MESSAGE_EVENTS:
        examples: list[tuple[str, str, Any]] = []
        if name == "message.delivered":
            examples.append(("delivered", "Delivered", EVENT_DELIVERED))
        elif name == "message.failed":
            examples.append(("failed", "Failed for good", EVENT_FAILED))
        else:
            status = name.removeprefix("message.")
            examples.append((status, status.capitalize(), {
                **EVENT_DELIVERED, "type": name,
                "data": {**EVENT_DELIVERED["data"], "status": status}}))
        out[name] = _event(f"A recipient's message is {name.removeprefix('message.')}",
                           "MessageWebhookEvent", *examples)
    for name in DEVICE_EVENTS:
        state = name.removeprefix("device.")
        out[name] = _event(f"A phone is {state}", "DeviceWebhookEvent",
                           (state, state.capitalize(), {**EVENT_OFFLINE, "type": name}))
    return out
