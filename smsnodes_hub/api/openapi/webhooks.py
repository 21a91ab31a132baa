"""/api/webhooks: registering webhooks, changing them, and their delivery log (what the
hub POSTs to them is in events.py)."""

from __future__ import annotations

from smsnodes_hub import webhooks
from smsnodes_hub.api.openapi.builders import (
    BAD_PER_PAGE,
    NOT_AN_OBJECT,
    TOKEN_LOGIN,
    Json,
    curl,
    error,
    not_found,
    ok,
    operation,
    page,
    pages,
    param,
    query,
    request,
    too_large,
)
from smsnodes_hub.api.openapi.events import EVENT_ID
from smsnodes_hub.api.webhooks import NOTHING_TO_CHANGE

TAG = {"name": "Webhooks", "description": (
    "Extension: your server is told of each event (a received SMS, a message's outcome, "
    "a phone going on- or offline) by a signed POST, retried until it answers 2xx. The "
    "payloads are described under *Webhooks* (`webhooks` in this document); signatures "
    "follow the Standard Webhooks specification (standardwebhooks.com), so its "
    "libraries verify them.")}
EVENT_NAMES = ", ".join(webhooks.EVENTS)
PRIVATE_REFUSED = ("url must point to a public address: 10.0.0.8 is loopback, private, "
                   "link-local or otherwise internal (needs webhooks.allow_private)")
NO_WEBHOOK = ("No such webhook of this account.", "Webhook 5 not found")

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
CREATE_EXAMPLE = {"url": "https://yourapp.example/webhooks/sms",
                  "events": ["sms.received", "message.delivered"]}


def _create_webhook(base: str) -> Json:
    return operation(
        "Webhooks", "createWebhook", "Register a webhook",
        "Extension. From now on, each chosen event of the account is POSTed to `url`, "
        "signed with the `secret` of this answer (shown only here: keep it). The URL is "
        "checked now (an IP address, or every address its host name resolves to, must "
        "be public) and again on every connection, as is the `https://` rule. At most "
        f"{webhooks.MAX_WEBHOOKS} per account.",
        body=request("The receiver and its events.", "CreateWebhookRequest",
                     ("received", "Replies and delivery reports", CREATE_EXAMPLE),
                     ("presence", "Phone presence only", {
                         "url": "https://status.example/hooks/phones",
                         "events": ["device.online", "device.offline"]})),
        responses={
            "201": ok("Registered.", "NewWebhook", (
                "created", "With its secret", {**WEBHOOK, "lastSuccessAt": None,
                                               "secret": SECRET})),
            "400": error(
                "A bad URL or list of events (the message names the problem).",
                ("Not https", "url must start with https://"),
                ("Private address", PRIVATE_REFUSED),
                ("Unknown event", f'events: unknown event "message.received": use '
                                  f"{EVENT_NAMES}"),
                ("No events", "events must name at least one event"),
                ("Not a JSON object", NOT_AN_OBJECT),
            ),
            "409": error("The account has the most webhooks allowed.", (
                "Too many", f"an account has at most {webhooks.MAX_WEBHOOKS} webhooks: "
                            "delete one first")),
            "413": too_large(),
        },
        curl=curl(f"{base}/api/webhooks", method="POST", data=CREATE_EXAMPLE,
                  data_apart=True),
    )


def _update_webhook(base: str) -> Json:
    return operation(
        "Webhooks", "updateWebhook", "Change or re-activate a webhook",
        "Extension. Change its URL or events, pause it (`active: false`), or re-activate "
        "it (`active: true`) after it was disabled: deliveries still pending are sent at "
        "once. Either every given field is valid and applied, or nothing changes.",
        parameters=[param("WebhookId")],
        body=request("What to change.", "UpdateWebhookRequest",
                     ("reactivate", "Re-activate", {"active": True}),
                     ("events", "Other events", {"events": ["message.failed"]})),
        responses={
            "200": ok("The webhook as it now stands.", "Webhook",
                      ("reactivated", "Active again", WEBHOOK)),
            "400": error("Nothing to change, or an invalid field.",
                         ("Nothing given", NOTHING_TO_CHANGE),
                         ("Bad active", "active must be true or false"),
                         ("Private address", PRIVATE_REFUSED)),
            "404": not_found(*NO_WEBHOOK),
            "413": too_large(),
        },
        curl=curl(f"{base}/api/webhooks/5", method="PATCH", data={"active": True}),
    )


def _list_deliveries(base: str) -> Json:
    return operation(
        "Webhooks", "listWebhookDeliveries", "A webhook's delivery log",
        "Extension. The events sent (or to be sent) to this webhook, newest first, each "
        "with every attempt: status code or error, duration, and when the next retry is "
        "due. Failures are retried with exponential backoff for "
        "`webhooks.retry_for_hours` (72) from the first attempt.",
        parameters=[
            param("WebhookId"),
            query("state", "Only deliveries in this state.",
                  {"type": "string", "enum": list(webhooks.DELIVERY_STATES)}, "failed"),
            *pages("Items per page."),
        ],
        responses={
            "200": ok("One page.", "DeliveryPage", (
                "page", "A retry in progress and a delivered event",
                page([DELIVERY_PENDING, DELIVERY], per_page=25, total=2, total_pages=1))),
            "400": error("A query parameter is invalid.",
                         ("Bad state", "state must be one of pending, delivered, failed"),
                         BAD_PER_PAGE),
            "404": not_found(*NO_WEBHOOK),
        },
        curl=curl(f"{base}/api/webhooks/5/deliveries?state=pending"),
    )


def paths(base: str) -> Json:
    one = f"{base}/api/webhooks/5"
    return {
        "/api/webhooks": {
            "post": _create_webhook(base),
            "get": operation(
                "Webhooks", "listWebhooks", "List webhooks",
                "Extension. The account's webhooks, without their secrets.",
                responses={"200": ok("The webhooks.", "WebhookList", (
                    "webhooks", "One active, one disabled",
                    {"data": [WEBHOOK, {**DISABLED, "id": 6}]}))},
                curl=curl(f"{base}/api/webhooks", login=TOKEN_LOGIN),
            ),
        },
        "/api/webhooks/{id}": {
            "get": operation(
                "Webhooks", "getWebhook", "Read a webhook",
                "Extension. One webhook, with why it is disabled if it is.",
                parameters=[param("WebhookId")],
                responses={
                    "200": ok("The webhook.", "Webhook", ("active", "Active", WEBHOOK),
                              ("disabled", "Disabled after failing for 72 hours", DISABLED)),
                    "404": not_found(*NO_WEBHOOK),
                },
                curl=curl(one),
            ),
            "patch": _update_webhook(base),
            "delete": operation(
                "Webhooks", "deleteWebhook", "Delete a webhook",
                "Extension. Nothing more is sent to it; its delivery log is deleted too.",
                parameters=[param("WebhookId")],
                responses={
                    "200": ok("Deleted.", "DeletedWebhook",
                              ("deleted", "Deleted", {"id": 5, "deleted": True})),
                    "404": not_found(*NO_WEBHOOK),
                },
                curl=curl(one, method="DELETE"),
            ),
        },
        "/api/webhooks/{id}/deliveries": {"get": _list_deliveries(base)},
    }
