"""The document's `components`: schemas, security schemes, parameters and headers."""

from __future__ import annotations

from typing import Any

from smsnodes_hub.api.openapi import schemas, webhook_schemas
from smsnodes_hub.api.openapi.builders import Json, path_id
from smsnodes_hub.messaging.idempotency import HEADER as IDEMPOTENCY_HEADER
from smsnodes_hub.messaging.idempotency import MAX_KEY


def _header(description: str, schema: Json, example: Any) -> Json:
    return {"description": description, "schema": schema, "example": example}


def components() -> Json:
    integer = {"type": "integer", "minimum": 0}
    return {
        "schemas": {**schemas.schemas(), **webhook_schemas.schemas()},
        "securitySchemes": {
            "basicAuth": {"type": "http", "scheme": "basic", "description":
                          "The device's username and password (`curl -u name:password`)."},
            "bearerAuth": {"type": "http", "scheme": "bearer", "description":
                           "An API token from POST /api/tokens (starts with `snh_`)."},
        },
        "parameters": {
            "MessageId": path_id("The `messageId` returned by POST /api/send-sms. Another "
                                 "account's message is a 404.", 123),
            "TokenId": path_id("The token's `id` (an API token, or the session token of a "
                               "phone, which disconnects it).", 7),
            "Idempotency-Key": {
                "name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
                "description": f"Extension: 1 to {MAX_KEY} printable characters of your "
                               "choice, one per message you mean to send. A request that "
                               "repeats an earlier one of the same account with the same "
                               "key within 24 hours gets the first response and creates "
                               "nothing; reusing a key for a different request is a 409.",
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY},
                "example": "order-4711-shipped",
            },
            "DeviceId": path_id("The phone's `id` (from GET /api/devices). A phone of "
                                "another account is a 404.", 2),
            "InboundId": path_id("The received SMS's `id` (also `inboundId` in its webhook "
                                 "event). Another account's is a 404.", 88),
            "WebhookId": path_id("The webhook's `id`. Another account's is a 404.", 5),
        },
        "headers": {
            "X-RateLimit-Limit": _header(
                "Requests allowed per one-minute window; 0 when the limit is off.", integer,
                600),
            "X-RateLimit-Remaining": _header(
                "Requests left in the current window; 0 when the limit is off.", integer, 599),
            "X-RateLimit-Reset": _header(
                "Seconds until the window resets; 0 when the limit is off.", integer, 42),
            "Allow": _header("The methods this path accepts.", {"type": "string"}, "POST"),
            "Retry-After": _header("Seconds to wait before trying again.", integer, 5),
            "Cache-Control-No-Store": _header("Never cached.", {"type": "string",
                                              "const": "no-store"}, "no-store"),
            "WWW-Authenticate": _header("The scheme to authenticate with.",
                                        {"type": "string"}, 'Basic realm="smsnodes-hub"'),
        },
    }
