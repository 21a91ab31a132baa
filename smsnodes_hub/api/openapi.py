"""The OpenAPI 3.1 description of every HTTP endpoint, served at GET /api/openapi.json.

Plain Python data and the one source of truth: the /docs page is generated from the same
`document()`, so every operation carries a summary, a description, described parameters,
request and response examples and a curl sample (`x-codeSamples`). tests/api/test_openapi.py
keeps it true: every route is documented, every example validates against its schema, and
live responses of the hub validate too.

Schemas are open (no `additionalProperties: false`): HTTP-API.md lets extensions add
fields, so clients must tolerate new ones. The test closes them to catch drift.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

import orjson
from aiohttp import web

from smsnodes_hub import __version__
from smsnodes_hub.api.auth import AUTH_REQUIRED
from smsnodes_hub.api.body import TOO_LARGE
from smsnodes_hub.api.errors import DATABASE_ERROR, DATABASE_UNAVAILABLE, INTERNAL_ERROR
from smsnodes_hub.api.messages import cannot_cancel
from smsnodes_hub.api.pagination import DEFAULT_PER_PAGE, MAX_PAGE, MAX_PER_PAGE
from smsnodes_hub.api.send_sms import (
    INVALID_CREDENTIALS,
    MAX_AHEAD,
    MAX_TEXT,
    MISSING_CREDENTIALS,
    RATE_LIMITED,
)
from smsnodes_hub.auth.crypto import SCHEME
from smsnodes_hub.auth.tokens import MAX_API_TOKENS, MAX_NAME
from smsnodes_hub.device.store import MAX_PACE
from smsnodes_hub.messaging.idempotency import HEADER as IDEMPOTENCY_HEADER
from smsnodes_hub.messaging.idempotency import MAX_KEY
from smsnodes_hub.messaging.messages import STATUSES
from smsnodes_hub.messaging.phones import MAX_RECIPIENTS

Json = dict[str, Any]

JSON = "application/json"
DEFAULT_BASE_URL = "http://localhost:3000"
MAX_AHEAD_SECONDS = int(MAX_AHEAD.total_seconds())
# The hub's own error strings, beside the seed's (imported, so the examples follow the code;
# tests/api/test_openapi.py pins the seed's literally).
BASIC_NEEDED = "This needs the device password: use Authorization: Basic"
NOT_AN_OBJECT = "Request body must be a JSON object"
IDEMPOTENCY_CONFLICT = f"{IDEMPOTENCY_HEADER} was already used with a different request"

RECIPIENT_STATUSES = [s for s in STATUSES if s != "partial"]
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"
NUMBER_PATTERN = r"^(\+[0-9]{6,15}|[0-9]{3,8})$"


# -- Small builders ---------------------------------------------------------------------------

def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _timestamp(description: str, *, nullable: bool = False) -> Json:
    """An ISO 8601 UTC timestamp ending in Z (format and pattern apply to strings only)."""
    return {
        "type": ["string", "null"] if nullable else "string",
        "format": "date-time",
        "pattern": TIMESTAMP_PATTERN,
        "description": description,
    }


def _moment(description: str) -> Json:
    """A timestamp a caller sends: any ISO 8601 form; without an offset it is UTC."""
    return {"type": "string", "format": "date-time", "description": description}


def _obj(properties: Json, required: list[str], description: str) -> Json:
    return {"type": "object", "description": description, "required": required,
            "properties": properties}


def _examples(*items: tuple[str, str, Any]) -> Json:
    """Named Example Objects from (name, summary, value)."""
    return {name: {"summary": summary, "value": value} for name, summary, value in items}


def _json(schema: Json, *examples: tuple[str, str, Any]) -> Json:
    body: Json = {"schema": schema}
    if examples:
        body["examples"] = _examples(*examples)
    return {JSON: body}


def _error(description: str, *examples: tuple[str, str], headers: Json | None = None) -> Json:
    """An error response: `{"error": "..."}`, with each (summary, message) as an example."""
    named = [(f"example{n}", summary, {"error": message})
             for n, (summary, message) in enumerate(examples, 1)]
    response: Json = {"description": description, "content": _json(_ref("Error"), *named)}
    if headers:
        response["headers"] = headers
    return response


def _header(name: str) -> Json:
    return {"$ref": f"#/components/headers/{name}"}


def _param(name: str) -> Json:
    return {"$ref": f"#/components/parameters/{name}"}


def _curl(source: str) -> list[Json]:
    return [{"lang": "Shell", "label": "curl", "source": source}]


RATE_HEADERS = {name: _header(name) for name in
                ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")}
RETRY_AFTER = {"Retry-After": _header("Retry-After")}
NO_STORE = {"Cache-Control": _header("Cache-Control-No-Store")}
BASIC_OR_BEARER: list[Json] = [{"basicAuth": []}, {"bearerAuth": []}]


def _auth_errors(*, password_only: bool = False) -> Json:
    """401, 429 and 503: what every authenticated extension endpoint can answer."""
    if password_only:
        unauthorized = _error(
            "No Basic header (a Bearer token cannot create tokens), or wrong credentials.",
            ("No Basic header", BASIC_NEEDED),
            ("Wrong username or password", INVALID_CREDENTIALS),
        )
    else:
        unauthorized = _error(
            "No credentials, wrong credentials, or a revoked or outdated token.",
            ("No Authorization header", AUTH_REQUIRED),
            ("Wrong password, unknown user or token", INVALID_CREDENTIALS),
            headers={"WWW-Authenticate": _header("WWW-Authenticate")},
        )
    return {
        "401": unauthorized,
        "429": _error("Too many failed logins from this client address: locked out for "
                      "`Retry-After` seconds.", ("Locked out", RATE_LIMITED),
                      headers=RETRY_AFTER),
        "503": _error("The database cannot be reached; retry after `Retry-After` seconds.",
                      ("Database down", DATABASE_UNAVAILABLE), headers=RETRY_AFTER),
    }


# -- Example values ---------------------------------------------------------------------------

SEED_REQUEST = {
    "deviceUsername": "your_device_name",
    "password": "your_device_password",
    "phoneNumbers": ["+1234567890", "+0987654321"],
    "message": "Hello from SMS Nodes!",
    "priority": 1,
}

MESSAGE_DELIVERED = {
    "id": 123,
    "status": "delivered",
    "message": "Your order has shipped.",
    "priority": 3,
    "attempt": 1,
    "createdAt": "2026-11-21T10:00:00.120Z",
    "scheduledAt": None,
    "expiresAt": None,
    "recipients": [{"to": "+1234567890", "status": "delivered", "error": None, "attempt": 1,
                    "updatedAt": "2026-11-21T10:00:04.310Z"}],
    "segments": 1,
    "segmentsPerRecipient": 1,
    "encoding": "GSM-7",
    "events": [
        {"status": "queued", "to": None, "at": "2026-11-21T10:00:00.120Z", "attempt": 1},
        {"status": "dispatched", "to": None, "at": "2026-11-21T10:00:00.121Z", "attempt": 1},
        {"status": "accepted", "to": None, "at": "2026-11-21T10:00:00.480Z", "attempt": 1},
        {"status": "sent", "to": "+1234567890", "at": "2026-11-21T10:00:02.950Z",
         "attempt": 1},
        {"status": "delivered", "to": "+1234567890", "at": "2026-11-21T10:00:04.310Z",
         "attempt": 1},
    ],
}

MESSAGE_PARTIAL = {
    "id": 124,
    "status": "partial",
    "message": "Réunion à 15h",
    "priority": 1,
    "attempt": 1,
    "createdAt": "2026-11-21T10:05:00.000Z",
    "scheduledAt": None,
    "expiresAt": "2026-11-21T12:05:00.000Z",
    "recipients": [
        {"to": "+1234567890", "status": "delivered", "error": None, "attempt": 1,
         "updatedAt": "2026-11-21T10:05:03.200Z"},
        {"to": "+0987654321", "status": "failed", "error": "RESULT_ERROR_NULL_PDU",
         "attempt": 1, "updatedAt": "2026-11-21T10:05:02.900Z"},
    ],
    "segments": 2,
    "segmentsPerRecipient": 1,
    "encoding": "UCS-2",
    "events": [
        {"status": "queued", "to": None, "at": "2026-11-21T10:05:00.000Z", "attempt": 1},
        {"status": "dispatched", "to": None, "at": "2026-11-21T10:05:00.001Z", "attempt": 1},
        {"status": "accepted", "to": None, "at": "2026-11-21T10:05:00.350Z", "attempt": 1},
        {"status": "failed", "to": "+0987654321", "at": "2026-11-21T10:05:02.900Z",
         "attempt": 1, "error": "RESULT_ERROR_NULL_PDU"},
        {"status": "delivered", "to": "+1234567890", "at": "2026-11-21T10:05:03.200Z",
         "attempt": 1},
    ],
}

MESSAGE_SCHEDULED = {
    "id": 125,
    "status": "scheduled",
    "message": "Reminder: your appointment is tomorrow at 9:00.",
    "priority": 2,
    "attempt": 1,
    "createdAt": "2026-11-21T10:10:00.000Z",
    "scheduledAt": "2026-11-22T08:00:00.000Z",
    "expiresAt": None,
    "recipients": [{"to": "+1234567890", "status": "scheduled", "error": None, "attempt": 1,
                    "updatedAt": "2026-11-21T10:10:00.000Z"}],
    "segments": 1,
    "segmentsPerRecipient": 1,
    "encoding": "GSM-7",
}

MESSAGE_CANCELLED = {
    "id": 126,
    "status": "cancelled",
    "message": "Flash sale starts now!",
    "priority": 1,
    "attempt": 1,
    "createdAt": "2026-11-21T10:20:00.000Z",
    "scheduledAt": None,
    "expiresAt": None,
    "recipients": [{"to": "+1234567890", "status": "cancelled", "error": None, "attempt": 1,
                    "updatedAt": "2026-11-21T10:21:30.000Z"}],
    "segments": 1,
    "segmentsPerRecipient": 1,
    "encoding": "GSM-7",
    "events": [
        {"status": "queued", "to": None, "at": "2026-11-21T10:20:00.000Z", "attempt": 1},
        {"status": "cancelled", "to": "+1234567890", "at": "2026-11-21T10:21:30.000Z",
         "attempt": 1},
    ],
}


def _listed(message: Json) -> Json:
    """A message as the history shows it: without its events."""
    return {k: v for k, v in message.items() if k != "events"}


TOKEN_INFO = {"id": 7, "kind": "api", "name": "billing script",
              "createdAt": "2026-11-21T09:00:00.000Z",
              "lastUsedAt": "2026-11-21T10:00:00.120Z"}
DEVICE = {
    "id": 1,
    "username": "shop-phone-1",
    "online": True,
    "connectedSince": "2026-11-21T08:00:00.000Z",
    "lastSeenAt": "2026-11-21T10:29:41.000Z",
    "createdAt": "2026-11-01T12:00:00.000Z",
    "model": "Pixel 7",
    "app": "1.4.2",
    "sims": 2,
    "battery": 87,
    "charging": True,
    "signal": 3,
    "telemetryAt": "2026-11-21T10:25:00.000Z",
    "pacing": {"perMinute": 20},
}
HEALTHY = {"status": "healthy", "timestamp": "2026-11-21T10:30:00Z", "ssl": False,
           "encryption": SCHEME, "connectedDevices": 3, "version": __version__,
           "database": "ok"}
UNHEALTHY = {**HEALTHY, "status": "unhealthy", "connectedDevices": 1,
             "database": "unavailable"}


# -- Schemas ----------------------------------------------------------------------------------

def _schemas() -> Json:
    status = {"type": "string", "enum": list(STATUSES)}
    recipient_status = {"type": "string", "enum": RECIPIENT_STATUSES}
    number_out = {"type": ["string", "null"], "pattern": NUMBER_PATTERN}
    token_properties: Json = {
        "id": {"type": "integer", "description": "The token's id, for revoking it."},
        "kind": {"type": "string", "enum": ["api", "session"],
                 "description": "`api`: a Bearer token for scripts; `session`: a phone's "
                                "login (its socket closes when revoked)."},
        "name": {"type": ["string", "null"], "maxLength": MAX_NAME,
                 "description": "The name given at creation, or null."},
        "createdAt": _timestamp("When the token was created."),
        "lastUsedAt": _timestamp("When the token last authenticated a request, or null "
                                 "if never.", nullable=True),
    }
    token_required = ["id", "kind", "name", "createdAt", "lastUsedAt"]
    return {
        "Error": _obj(
            {"error": {"type": "string", "description": "A human-readable reason. It never "
                       "contains a password. Match on the status code, not on this text, "
                       "except for the SMS Nodes strings documented on each operation."}},
            ["error"], "Every error of every /api/ endpoint.",
        ),
        "SendSmsRequest": {
            "type": "object",
            "description": "At most 64 KiB of JSON. Give `deviceUsername` and `password` "
                           "here (the SMS Nodes way) unless an `Authorization` header "
                           "authenticates the request; other fields are ignored.",
            "required": ["phoneNumbers", "message"],
            "properties": {
                "deviceUsername": {"type": "string", "minLength": 1, "description":
                                   "The device account that sends (required unless an "
                                   "Authorization header is given)."},
                "password": {"type": "string", "minLength": 1, "format": "password",
                             "description": "Its password (required unless an "
                                            "Authorization header is given)."},
                "phoneNumbers": {
                    "type": "array", "minItems": 1, "maxItems": MAX_RECIPIENTS,
                    "items": {"type": "string"},
                    "description": "1 to 100 recipients. Spaces, dashes, dots and "
                                   "parentheses are removed; then each must be `+` and 6 to "
                                   "15 digits, or a short code of 3 to 8 digits. Duplicates "
                                   "after cleaning are sent once. A bad entry refuses the "
                                   "whole request with a 400 naming it.",
                },
                "message": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT,
                            "description": "The text: 1 to 1600 characters (code points). "
                                           "Long texts are sent as concatenated SMS."},
                "priority": {"type": ["integer", "null"], "minimum": 1, "maximum": 5,
                             "default": 1, "description": "1 (default, lowest) to 5 "
                             "(highest). A JSON integer; null means 1. Waiting messages "
                             "go to the phone highest priority first, oldest first."},
                "scheduledAt": _moment("Extension: not pushed to the phone before this "
                                       "moment (ISO 8601; without an offset it is UTC), "
                                       "at most a year ahead. A moment already past means "
                                       "now."),
                "expiresAt": _moment("Extension: never sent after this moment (in the "
                                     "future, at most a year ahead, after `scheduledAt`); "
                                     "recipients not yet sent by then end `expired`."),
                "ttl": {"type": "integer", "minimum": 1, "maximum": MAX_AHEAD_SECONDS,
                        "description": "Extension: seconds from now, the same as "
                                       "`expiresAt` (give one, not both)."},
            },
        },
        "SendSmsResponse": _obj(
            {
                "message": {"type": "string", "enum": ["SMS queued successfully",
                                                       "SMS scheduled successfully"],
                            "description": "\"SMS scheduled successfully\" when "
                                           "`scheduledAt` is in the future."},
                "messageId": {"type": "integer", "description": "The message's id, for "
                              "GET and DELETE /api/messages/{id}."},
                "deviceOnline": {"type": "boolean", "description": "The device has a live "
                                 "connection now (to any hub process sharing the database)."},
                "sentImmediately": {"type": "boolean", "description": "The message was "
                                    "pushed to that connection during this request."},
                "segments": {"type": "integer", "minimum": 1, "description": "Extension: "
                             "how many SMS this request sends in all: `segmentsPerRecipient` "
                             "times the number of (distinct) recipients."},
                "segmentsPerRecipient": {"type": "integer", "minimum": 1, "description":
                                         "Extension: how many SMS the text takes (one "
                                         "recipient's share)."},
                "encoding": {"type": "string", "enum": ["GSM-7", "UCS-2"], "description":
                             "Extension: GSM-7 (160 characters in one SMS, 153 per part) or "
                             "UCS-2 (70, 67 per part) when a character is outside GSM 03.38."},
            },
            ["message", "messageId", "deviceOnline", "sentImmediately"],
            "The message is safely stored. `deviceOnline: false` is not an error: the phone "
            "gets the message the moment it connects.",
        ),
        "Health": _obj(
            {
                "status": {"type": "string", "enum": ["healthy", "unhealthy"]},
                "timestamp": _timestamp("The hub's clock, UTC."),
                "ssl": {"type": "boolean", "description": "Whether this hub itself serves "
                        "TLS (false behind a TLS-terminating proxy)."},
                "encryption": {"type": "string", "description": "The scheme really used "
                               "for message texts and numbers at rest."},
                "connectedDevices": {"type": "integer", "minimum": 0, "description":
                                     "Phones with a live authenticated connection, across "
                                     "every hub process sharing the database (when the "
                                     "database is down: this process's only)."},
                "version": {"type": "string", "description": "Extension: the hub's version."},
                "database": {"type": "string", "enum": ["ok", "unavailable"],
                             "description": "Extension: whether the database answered."},
            },
            ["status", "timestamp", "ssl", "encryption", "connectedDevices"],
            "The hub's health, as the SMS Nodes gateway reports it plus extensions.",
        ),
        "MessageStatus": {**status, "description":
                          "scheduled (waits for its time), queued (waits for its device), "
                          "dispatched (pushed, not yet acked), accepted (acked by the "
                          "phone), then sent, delivered, failed, expired, cancelled; "
                          "partial when the recipients ended in different statuses."},
        "RecipientStatus": {**recipient_status, "description": "One recipient's status "
                            "(a waiting recipient shows its message's status)."},
        "Recipient": _obj(
            {
                "to": {**number_out, "description": "The cleaned phone number (null if its "
                       "stored ciphertext cannot be opened)."},
                "status": _ref("RecipientStatus"),
                "error": {"type": ["string", "null"], "description": "The phone's reason "
                          "for a failed recipient, else null (also while a failed recipient "
                          "waits for its retry: that attempt's error is in `events`)."},
                "attempt": {"type": "integer", "minimum": 1, "description": "The delivery "
                            "attempt (failed recipients may be retried)."},
                "updatedAt": _timestamp("When this recipient's status last changed."),
            },
            ["to", "status", "error", "attempt", "updatedAt"], "One recipient of a message.",
        ),
        "MessageEvent": _obj(
            {
                "status": _ref("RecipientStatus"),
                "to": {**number_out, "description": "The recipient for a per-recipient "
                       "step, null for a step of the whole message."},
                "at": _timestamp("When it happened."),
                "attempt": {"type": ["integer", "null"], "minimum": 1,
                            "description": "The delivery attempt it belongs to."},
                "error": {"type": "string", "description": "The reason of a failure "
                          "(present only then)."},
                "reportedAt": _timestamp("The phone's own time of a status report, when it "
                                         "gave one (`at` is the hub's clock)."),
            },
            ["status", "to", "at", "attempt"], "One step of a message's timeline.",
        ),
        "Message": _obj(
            {
                "id": {"type": "integer"},
                "status": _ref("MessageStatus"),
                "message": {"type": ["string", "null"], "description": "The text (null if "
                            "its stored ciphertext cannot be opened)."},
                "priority": {"type": "integer", "minimum": 1, "maximum": 5},
                "attempt": {"type": "integer", "minimum": 1,
                            "description": "The message's latest delivery attempt."},
                "createdAt": _timestamp("When the hub accepted it."),
                "scheduledAt": _timestamp("Not pushed before then; null to send at once.",
                                          nullable=True),
                "expiresAt": _timestamp("Never sent after then; null for no expiry.",
                                        nullable=True),
                "recipients": {"type": "array", "items": _ref("Recipient"), "minItems": 1},
                "segments": {"type": "integer", "minimum": 0,
                             "description": "SMS in all: per recipient times recipients, "
                                            "as in the send-sms answer (absent with "
                                            "`message` null)."},
                "segmentsPerRecipient": {"type": "integer", "minimum": 0,
                                         "description": "SMS per recipient."},
                "encoding": {"type": "string", "enum": ["GSM-7", "UCS-2"]},
                "events": {"type": "array", "items": _ref("MessageEvent"), "description":
                           "The timeline in time order; only on a single message (GET or "
                           "DELETE /api/messages/{id}), not in the history."},
            },
            ["id", "status", "message", "priority", "attempt", "createdAt", "scheduledAt",
             "expiresAt", "recipients"],
            "One message of the caller's account, decrypted for its owner. The overall "
            "`status` is the least advanced status of the recipients that have not ended; "
            "once all have ended, their common status, or `partial`.",
        ),
        "MessagePage": _obj(
            {
                "data": {"type": "array", "items": _ref("Message"),
                         "description": "Newest first."},
                "page": {"type": "integer", "minimum": 1},
                "perPage": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
                "total": {"type": "integer", "minimum": 0,
                          "description": "Messages matching the filters, on all pages."},
                "totalPages": {"type": "integer", "minimum": 0},
            },
            ["data", "page", "perPage", "total", "totalPages"], "One page of the history.",
        ),
        "CreateTokenRequest": {
            "type": "object",
            "description": "Optional: an empty body is the same as `{}`.",
            "properties": {"name": {"type": ["string", "null"], "minLength": 1,
                                    "maxLength": MAX_NAME,
                                    "description": "A label, to tell tokens apart."}},
        },
        "Token": _obj(token_properties, token_required, "An API token (never the secret)."),
        "NewToken": _obj(
            {**token_properties, "token": {"type": "string", "pattern": "^snh_",
                                           "description": "The secret: shown this once."}},
            [*token_required, "token"],
            "A new API token, with its secret. Use it as `Authorization: Bearer <token>`.",
        ),
        "TokenList": _obj({"data": {"type": "array", "items": _ref("Token")}}, ["data"],
                          "The device's API tokens, oldest first."),
        "RevokedToken": _obj(
            {"id": {"type": "integer"}, "revoked": {"type": "boolean", "const": True}},
            ["id", "revoked"], "The token no longer authenticates anything.",
        ),
        "Pacing": _obj(
            {"perMinute": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_PACE,
                           "description": "At most this many SMS per minute from the "
                                          "device; null for no limit."}},
            ["perMinute"], "The device's pacing.",
        ),
        "Device": _obj(
            {
                "id": {"type": "integer"},
                "username": {"type": "string"},
                "online": {"type": "boolean", "description": "Has a live connection now."},
                "connectedSince": _timestamp("Start of the live connection.", nullable=True),
                "lastSeenAt": _timestamp("Last sign of life from the phone.", nullable=True),
                "createdAt": _timestamp("When the account was created."),
                "model": {"type": ["string", "null"], "description": "From the phone's "
                          "`auth` frame."},
                "app": {"type": ["string", "null"], "description": "The app's version, from "
                        "its `auth` frame."},
                "sims": {"type": ["integer", "null"], "minimum": 0},
                "battery": {"type": ["integer", "null"], "minimum": 0, "maximum": 100,
                            "description": "Percent, from the latest telemetry."},
                "charging": {"type": ["boolean", "null"]},
                "signal": {"type": ["integer", "null"], "minimum": 0, "maximum": 4,
                           "description": "Signal level 0 to 4."},
                "telemetryAt": _timestamp("When the latest telemetry arrived.",
                                          nullable=True),
                "pacing": _ref("Pacing"),
            },
            ["id", "username", "online", "connectedSince", "lastSeenAt", "createdAt", "model",
             "app", "sims", "battery", "charging", "signal", "telemetryAt", "pacing"],
            "The authenticated device: presence, telemetry and pacing.",
        ),
    }


def _components() -> Json:
    def header(description: str, schema: Json, example: Any) -> Json:
        return {"description": description, "schema": schema, "example": example}

    from smsnodes_hub.api import openapi_webhooks  # imports this module's builders: imported late

    integer = {"type": "integer", "minimum": 0}
    return {
        "schemas": {**_schemas(), **openapi_webhooks.schemas()},
        "securitySchemes": {
            "basicAuth": {"type": "http", "scheme": "basic", "description":
                          "The device's username and password (`curl -u name:password`)."},
            "bearerAuth": {"type": "http", "scheme": "bearer", "description":
                           "An API token from POST /api/tokens (starts with `snh_`)."},
        },
        "parameters": {
            "MessageId": {"name": "id", "in": "path", "required": True,
                          "description": "The `messageId` returned by POST /api/send-sms. "
                                         "Another account's message is a 404.",
                          "schema": {"type": "integer", "minimum": 1}, "example": 123},
            "TokenId": {"name": "id", "in": "path", "required": True,
                        "description": "The token's `id` (an API token, or the session "
                                       "token of a phone, which disconnects it).",
                        "schema": {"type": "integer", "minimum": 1}, "example": 7},
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
            **openapi_webhooks.parameters(),
        },
        "headers": {
            "X-RateLimit-Limit": header(
                "Requests allowed per one-minute window; 0 when the limit is off.", integer,
                600),
            "X-RateLimit-Remaining": header(
                "Requests left in the current window; 0 when the limit is off.", integer, 599),
            "X-RateLimit-Reset": header(
                "Seconds until the window resets; 0 when the limit is off.", integer, 42),
            "Allow": header("The methods this path accepts.", {"type": "string"}, "POST"),
            "Retry-After": header("Seconds to wait before trying again.", integer, 5),
            "Cache-Control-No-Store": header("Never cached.", {"type": "string",
                                             "const": "no-store"}, "no-store"),
            "WWW-Authenticate": header("The scheme to authenticate with.",
                                       {"type": "string"}, 'Basic realm="smsnodes-hub"'),
        },
    }


# -- Operations -------------------------------------------------------------------------------

def _send_sms(base: str) -> Json:
    basic_body = {"phoneNumbers": ["+1234567890"], "message": "Hello"}
    return {
        "tags": ["SMS"],
        "operationId": "sendSms",
        "summary": "Send an SMS",
        "description": (
            "Queue one text for 1 to 100 recipients, sent by the device account that "
            "authenticates the request. Compatible with the SMS Nodes gateway: its requests, "
            "answers and error strings work unchanged.\n\n"
            "Authenticate with `deviceUsername` and `password` in the body, or (extension) "
            "with `Authorization: Basic` or `Authorization: Bearer <api token>`; a header, "
            "when present, wins over the body fields.\n\n"
            "A repeat of a request with the same `Idempotency-Key` (same account, within "
            "24 hours) answers the first response again, with the same `messageId`, and "
            "sends nothing.\n\n"
            "The 200 is answered once the message is safely stored. Nothing is stored for a "
            "4xx, so retrying a 429 or 503 after `Retry-After` is safe; an `Idempotency-Key` "
            "makes any retry safe.\n\n"
            "Every response, including a `405` for a wrong method, carries "
            "`X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`; with the "
            "limit turned off (`limits.send_per_minute = 0`) all three are `0`. Requests "
            "refused before the account is known count against the client address.\n\n"
            "With an `Idempotency-Key`, a repeat is answered before the checks that depend "
            "on the clock: a repeat after its `expiresAt` has passed still gets the first "
            "response."
        ),
        "security": [{}, {"basicAuth": []}, {"bearerAuth": []}],
        "parameters": [_param("Idempotency-Key")],
        "requestBody": {
            "required": True,
            "description": "The message and, without an Authorization header, the "
                           "credentials.",
            "content": _json(
                _ref("SendSmsRequest"),
                ("seed", "The SMS Nodes example, credentials in the body", SEED_REQUEST),
                ("basic", "With Authorization: Basic or Bearer (no credentials in the body)",
                 basic_body),
                ("scheduled", "Extension: scheduled, with an expiry",
                 {"phoneNumbers": ["+1234567890"],
                  "message": "Reminder: your appointment is tomorrow at 9:00.",
                  "priority": 2, "scheduledAt": "2026-11-22T08:00:00Z",
                  "expiresAt": "2026-11-22T09:00:00Z"}),
                ("ttl", "Extension: not worth sending after 10 minutes",
                 {"phoneNumbers": ["+1 (234) 567-890", "12345"],
                  "message": "Your login code is 482913", "priority": 5, "ttl": 600}),
            ),
        },
        "responses": {
            "200": {
                "description": "Stored and queued (or scheduled).",
                "headers": RATE_HEADERS,
                "content": _json(
                    _ref("SendSmsResponse"),
                    ("queued", "Pushed to the connected phone at once",
                     {"message": "SMS queued successfully", "messageId": 123,
                      "deviceOnline": True, "sentImmediately": True, "segments": 2,
                      "segmentsPerRecipient": 1, "encoding": "GSM-7"}),
                    ("offline", "The phone is offline: it gets the message when it connects",
                     {"message": "SMS queued successfully", "messageId": 124,
                      "deviceOnline": False, "sentImmediately": False, "segments": 2,
                      "segmentsPerRecipient": 2, "encoding": "UCS-2"}),
                    ("scheduled", "Scheduled for later",
                     {"message": "SMS scheduled successfully", "messageId": 125,
                      "deviceOnline": True, "sentImmediately": False, "segments": 1,
                      "segmentsPerRecipient": 1, "encoding": "GSM-7"}),
                ),
            },
            "400": _error(
                "Missing credentials, or an invalid field (the message names it).",
                ("No username or password", MISSING_CREDENTIALS),
                ("Not a JSON object", NOT_AN_OBJECT),
                ("A bad phone number", 'phoneNumbers[1]: invalid phone number "call me": use '
                 "+ and 6 to 15 digits, or a short code of 3 to 8 digits"),
                ("Text too long", f"message must be at most {MAX_TEXT} characters"),
                ("Bad priority", "priority must be an integer from 1 to 5"),
                ("ttl with expiresAt", "ttl and expiresAt cannot be used together"),
                ("ttl ends before scheduledAt", "ttl must end after scheduledAt: it counts "
                                                "seconds from now, not from scheduledAt"),
                ("Bad Idempotency-Key", f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_KEY} "
                                        "printable characters"),
                headers=RATE_HEADERS,
            ),
            "401": _error("Wrong username or password, or an invalid token.",
                          ("Wrong credentials", INVALID_CREDENTIALS), headers=RATE_HEADERS),
            "409": _error("Extension: the `Idempotency-Key` was used before with a different "
                          "request.", ("Key reused", IDEMPOTENCY_CONFLICT),
                          headers=RATE_HEADERS),
            "413": _error("The body is over 64 KiB.", ("Too large", TOO_LARGE),
                          headers=RATE_HEADERS),
            "429": _error("The account's send limit is used up, the client address sent too "
                          "many refused requests, or it is locked out after failed logins.",
                          ("Rate limited", RATE_LIMITED),
                          headers={**RATE_HEADERS, **RETRY_AFTER}),
            "405": _error("A method other than POST.", ("Wrong method", "Method not allowed"),
                          headers={**RATE_HEADERS, "Allow": _header("Allow")}),
            "500": _error("The database refused a statement for another reason than being "
                          "unreachable (the SMS Nodes gateway's own 500 body), or a bug; "
                          "logged by the hub. Nothing is stored.",
                          ("Database error", DATABASE_ERROR),
                          ("Bug", INTERNAL_ERROR), headers=RATE_HEADERS),
            "503": _error("The database cannot be reached (the SMS Nodes gateway answered "
                          "500 \"Database error\").", ("Database down", DATABASE_UNAVAILABLE),
                          headers={**RATE_HEADERS, **RETRY_AFTER}),
        },
        "x-codeSamples": _curl(
            f"curl -sS -X POST {base}/api/send-sms \\\n"
            "  -H 'Content-Type: application/json' \\\n"
            f"  -d '{_pretty(SEED_REQUEST)}'\n\n"
            "# With HTTP Basic and an Idempotency-Key; -i shows the X-RateLimit-* headers\n"
            f"curl -sS -i -u 'your_device_name:your_device_password' {base}/api/send-sms \\\n"
            "  -H 'Content-Type: application/json' \\\n"
            "  -H 'Idempotency-Key: order-4711-shipped' \\\n"
            f"  -d '{_compact(basic_body)}'"
        ),
    }


def _health(base: str) -> Json:
    return {
        "tags": ["Health"],
        "operationId": "getHealth",
        "summary": "Health check",
        "description": (
            "For uptime monitors; no authentication. Compatible with the SMS Nodes "
            "gateway. When the database cannot be reached the answer is 503 with "
            "`\"status\": \"unhealthy\"`, within 2 seconds, never hanging."
        ),
        "security": [],
        "responses": {
            "200": {"description": "Healthy.", "headers": NO_STORE,
                    "content": _json(_ref("Health"), ("healthy", "Healthy", HEALTHY))},
            "503": {"description": "The database cannot be reached.",
                    "headers": {**NO_STORE, **RETRY_AFTER},
                    "content": _json(_ref("Health"),
                                     ("unhealthy", "Database down", UNHEALTHY))},
        },
        "x-codeSamples": _curl(f"curl -sS {base}/api/health"),
    }


def _get_message(base: str) -> Json:
    return {
        "tags": ["Messages"],
        "operationId": "getMessage",
        "summary": "Read a message's status and timeline",
        "description": (
            "Extension. The message with each recipient's status and the `events` "
            "timeline, in time order. Only the account that sent it can read it; any "
            "other gets a 404."
        ),
        "security": BASIC_OR_BEARER,
        "parameters": [_param("MessageId")],
        "responses": {
            "200": {"description": "The message.", "content": _json(
                _ref("Message"),
                ("delivered", "Delivered", MESSAGE_DELIVERED),
                ("partial", "One recipient delivered, one failed", MESSAGE_PARTIAL),
                ("scheduled", "Scheduled, waiting for its time",
                 {**MESSAGE_SCHEDULED, "events": [
                     {"status": "scheduled", "to": None, "at": "2026-11-21T10:10:00.000Z",
                      "attempt": 1}]}),
            )},
            "404": _error("No such message of this account.",
                          ("Not found", "Message 123 not found")),
            **_auth_errors(),
        },
        "x-codeSamples": _curl(f"curl -sS -u 'shop-phone-1:correct horse' "
                               f"{base}/api/messages/123"),
    }


def _list_messages(base: str) -> Json:
    def query(name: str, description: str, schema: Json, example: Any) -> Json:
        return {"name": name, "in": "query", "required": False, "description": description,
                "schema": schema, "example": example}

    return {
        "tags": ["Messages"],
        "operationId": "listMessages",
        "summary": "List sent messages",
        "description": (
            "Extension. The account's messages, newest first, in pages, without their "
            "`events` (read one message for its timeline). Filters combine."
        ),
        "security": BASIC_OR_BEARER,
        "parameters": [
            query("status", "Only messages whose overall status is this.",
                  _ref("MessageStatus"), "delivered"),
            query("since", "Only messages created at or after this moment (ISO 8601).",
                  _moment("A moment."), "2026-11-21T00:00:00Z"),
            query("until", "Only messages created before this moment (ISO 8601).",
                  _moment("A moment."), "2026-11-22T00:00:00Z"),
            query("to", "Only messages to this phone number (cleaned like phoneNumbers, so "
                        "`+1 234 567-890` matches `+1234567890`).",
                  {"type": "string"}, "+1234567890"),
            query("page", "The page, from 1. Past the last page `data` is empty.",
                  {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}, 1),
            query("per_page", "Messages per page.",
                  {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE,
                   "default": DEFAULT_PER_PAGE}, 50),
        ],
        "responses": {
            "200": {"description": "One page.", "content": _json(
                _ref("MessagePage"),
                ("page", "The first page", {
                    "data": [_listed(MESSAGE_PARTIAL), _listed(MESSAGE_DELIVERED)],
                    "page": 1, "perPage": 2, "total": 3, "totalPages": 2}),
                ("empty", "Nothing matches", {"data": [], "page": 1,
                                              "perPage": DEFAULT_PER_PAGE, "total": 0,
                                              "totalPages": 0}),
            )},
            "400": _error(
                "A query parameter is invalid (the message names it).",
                ("Bad status", f"status must be one of {', '.join(STATUSES)}"),
                ("Bad since", "since must be an ISO 8601 timestamp"),
                ("Bad per_page", f"per_page must be a whole number from 1 to {MAX_PER_PAGE}"),
                ("Bad to", "to must be a phone number"),
            ),
            **_auth_errors(),
        },
        "x-codeSamples": _curl(
            f"curl -sS -u 'shop-phone-1:correct horse' "
            f"'{base}/api/messages?status=failed&since=2026-11-21T00:00:00Z&per_page=50'"
        ),
    }


def _cancel_message(base: str) -> Json:
    return {
        "tags": ["Messages"],
        "operationId": "cancelMessage",
        "summary": "Cancel a message",
        "description": (
            "Extension. Every recipient not yet sent ends `cancelled`; a phone holding the "
            "message is told to drop it (one that sent it anyway reports the truth later). "
            "Answers the message as it now stands."
        ),
        "security": BASIC_OR_BEARER,
        "parameters": [_param("MessageId")],
        "responses": {
            "200": {"description": "Cancelled.", "content": _json(
                _ref("Message"), ("cancelled", "Cancelled while queued", MESSAGE_CANCELLED))},
            "404": _error("No such message of this account.",
                          ("Not found", "Message 126 not found")),
            "409": _error(
                "Nothing left to cancel; the reason follows the message's overall status.",
                ("Already sent", cannot_cancel(126, "sent")),
                ("Already delivered", cannot_cancel(126, "delivered")),
                ("Already failed", cannot_cancel(126, "failed")),
                ("Already cancelled", cannot_cancel(126, "cancelled")),
                ("Expired", cannot_cancel(126, "expired")),
                ("Every recipient ended", cannot_cancel(126, "partial")),
            ),
            **_auth_errors(),
        },
        "x-codeSamples": _curl(f"curl -sS -X DELETE -u 'shop-phone-1:correct horse' "
                               f"{base}/api/messages/126"),
    }


def _create_token(base: str) -> Json:
    return {
        "tags": ["Tokens"],
        "operationId": "createToken",
        "summary": "Create an API token",
        "description": (
            "Extension. A long-lived credential for scripts, used as "
            "`Authorization: Bearer <token>` wherever Basic works (except here: creating a "
            "token needs the password). The secret is shown in this answer only. Every "
            f"token dies when the password changes; a device has at most {MAX_API_TOKENS}."
        ),
        "security": [{"basicAuth": []}],
        "requestBody": {
            "required": False,
            "description": "Optional; may be empty.",
            "content": _json(_ref("CreateTokenRequest"),
                             ("named", "A named token", {"name": "billing script"}),
                             ("unnamed", "No name", {})),
        },
        "responses": {
            "201": {"description": "Created.", "content": _json(
                _ref("NewToken"),
                ("created", "The new token", {**TOKEN_INFO, "lastUsedAt": None,
                                              "token": "snh_tQ9mX2vL7bR4nK8wZ1cH5jP3sD6fG0aY"}),
            )},
            "400": _error("The body is not a JSON object, or `name` is not a string.",
                          ("Bad name", "name must be a string"),
                          ("Not a JSON object", NOT_AN_OBJECT)),
            "409": _error("The name is empty or too long, the password just changed, or "
                          "the device has too many tokens.",
                          ("Bad name", f"name must be 1 to {MAX_NAME} characters"),
                          ("Too many", "cannot create a token: the credentials changed, or "
                                       f"the device has {MAX_API_TOKENS} tokens already "
                                       "(revoke some)")),
            "413": _error("The body is over 64 KiB.", ("Too large", TOO_LARGE)),
            **_auth_errors(password_only=True),
        },
        "x-codeSamples": _curl(
            f"curl -sS -X POST -u 'shop-phone-1:correct horse' {base}/api/tokens \\\n"
            "  -H 'Content-Type: application/json' \\\n"
            "  -d '{\"name\": \"billing script\"}'"
        ),
    }


def _list_tokens(base: str) -> Json:
    return {
        "tags": ["Tokens"],
        "operationId": "listTokens",
        "summary": "List API tokens",
        "description": "Extension. The device's API tokens, without their secrets.",
        "security": BASIC_OR_BEARER,
        "responses": {
            "200": {"description": "The tokens.", "content": _json(
                _ref("TokenList"), ("tokens", "One token", {"data": [TOKEN_INFO]}))},
            **_auth_errors(),
        },
        "x-codeSamples": _curl(f"curl -sS -H 'Authorization: Bearer snh_...' "
                               f"{base}/api/tokens"),
    }


def _revoke_token(base: str) -> Json:
    return {
        "tags": ["Tokens"],
        "operationId": "revokeToken",
        "summary": "Revoke a token",
        "description": (
            "Extension. The token stops working at once, in every hub process: cached "
            "logins end, and a phone connected with that session token is disconnected."
        ),
        "security": BASIC_OR_BEARER,
        "parameters": [_param("TokenId")],
        "responses": {
            "200": {"description": "Revoked.", "content": _json(
                _ref("RevokedToken"), ("revoked", "Revoked", {"id": 7, "revoked": True}))},
            "404": _error("No such token of this device.", ("Not found", "Token 7 not found")),
            **_auth_errors(),
        },
        "x-codeSamples": _curl(f"curl -sS -X DELETE -u 'shop-phone-1:correct horse' "
                               f"{base}/api/tokens/7"),
    }


def _get_device(base: str) -> Json:
    return {
        "tags": ["Device"],
        "operationId": "getDevice",
        "summary": "Read the device's presence and telemetry",
        "description": (
            "Extension. Whether the phone is connected, what it last reported (battery, "
            "charging, signal) and its pacing."
        ),
        "security": BASIC_OR_BEARER,
        "responses": {
            "200": {"description": "The device.", "content": _json(
                _ref("Device"),
                ("online", "Connected, with telemetry", DEVICE),
                ("new", "Never connected", {
                    **DEVICE, "online": False, "connectedSince": None, "lastSeenAt": None,
                    "model": None, "app": None, "sims": None, "battery": None,
                    "charging": None, "signal": None, "telemetryAt": None,
                    "pacing": {"perMinute": None}}),
            )},
            "404": _error("The device account was removed.", ("Gone", "Device not found")),
            **_auth_errors(),
        },
        "x-codeSamples": _curl(f"curl -sS -u 'shop-phone-1:correct horse' {base}/api/device"),
    }


def _put_pacing(base: str) -> Json:
    return {
        "tags": ["Device"],
        "operationId": "setPacing",
        "summary": "Set the device's pacing",
        "description": (
            "Extension. At most `perMinute` SMS per minute from this device (carriers "
            "block phones that send too fast); `null` removes the limit. Applies at once, "
            "also to messages already waiting."
        ),
        "security": BASIC_OR_BEARER,
        "requestBody": {
            "required": True,
            "description": "The new pacing.",
            "content": _json(_ref("Pacing"),
                             ("limit", "At most 20 SMS per minute", {"perMinute": 20}),
                             ("off", "No limit", {"perMinute": None})),
        },
        "responses": {
            "200": {"description": "The pacing now in force.", "content": _json(
                _ref("Pacing"), ("limit", "Set", {"perMinute": 20}))},
            "400": _error(
                "`perMinute` is missing or out of range, or the body is not a JSON object.",
                ("Missing", "perMinute is required (a number of SMS per minute, or null)"),
                ("Out of range", f"perMinute must be a whole number from 1 to {MAX_PACE}, "
                                 "or null"),
                ("Not a JSON object", NOT_AN_OBJECT),
            ),
            "413": _error("The body is over 64 KiB.", ("Too large", TOO_LARGE)),
            **_auth_errors(),
        },
        "x-codeSamples": _curl(
            f"curl -sS -X PUT -u 'shop-phone-1:correct horse' {base}/api/device/pacing \\\n"
            "  -H 'Content-Type: application/json' -d '{\"perMinute\": 20}'"
        ),
    }


def _get_openapi(base: str) -> Json:
    return {
        "tags": ["Meta"],
        "operationId": "getOpenApi",
        "summary": "This document",
        "description": "The OpenAPI 3.1 description of this API. No authentication; "
                       "cacheable (`ETag`, `If-None-Match`).",
        "security": [],
        "responses": {
            "200": {"description": "The document.",
                    "headers": {"ETag": {"description": "The document's version.",
                                         "schema": {"type": "string"}}},
                    "content": {JSON: {"schema": {"type": "object", "required": ["openapi"],
                                                  "properties": {"openapi": {
                                                      "type": "string",
                                                      "pattern": r"^3\.1\.\d+$"}}}}}},
            "304": {"description": "Unchanged since the `ETag` given in `If-None-Match`."},
        },
        "x-codeSamples": _curl(f"curl -sS {base}/api/openapi.json"),
    }


def _pretty(value: Json) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def _compact(value: Json) -> str:
    """JSON on one line with a space after separators (never inside strings), for curl."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


DESCRIPTION = """\
A self-hosted SMS gateway: Android phones connected over WebSockets send the SMS; scripts and
monitors use this HTTP API.

`POST /api/send-sms` and `GET /api/health` are compatible with the SMS Nodes gateway: a script
written for it works unchanged once its base URL points at this hub. Everything else, and any
field or header marked *extension*, is this hub's own; extensions never change the SMS Nodes
fields, codes or meanings.

## Conventions

- Request and response bodies are JSON (requests at most 64 KiB). Every error is
  `{"error": "<reason>"}` and never contains a password.
- Timestamps are ISO 8601 UTC ending in `Z`, such as `2026-11-21T10:30:00Z`.
- Authentication: `POST /api/send-sms` takes the device's credentials in its body (the SMS
  Nodes way), `Authorization: Basic`, or `Authorization: Bearer <api token>`. The other
  extension endpoints take Basic or Bearer; tokens come from `POST /api/tokens`.
- Failed logins are throttled per client address: after `security.login_max_failures` (5 by
  default) failures, every login from that address is answered
  `429 {"error": "Rate limit exceeded"}` with `Retry-After` for a while, even with the right
  password.
- Besides the answers listed on each operation, any `/api/` path can answer `404` (unknown
  path), `405` with `Allow` (wrong method) and `500` (logged by the hub): `{"error":
  "Database error"}` when the database refused a statement for another reason than being
  unreachable (the SMS Nodes gateway's body), `{"error": "Internal server error"}` for a bug.

## Phones: `/ws/device`

Phones do not use this API. Each keeps one WebSocket to `/ws/device` (`wss://` when the hub
serves TLS) and speaks device protocol v1: JSON text frames, `auth` first (password or session
token), then `sms` frames pushed by the hub, acks, `status` reports, inbound SMS and
telemetry. It is not an HTTP operation and is not described here: see docs/protocol.md.
"""


def document(base_url: str | None = None) -> Json:
    """The OpenAPI 3.1 document. `base_url` (e.g. "https://sms.example.com") becomes the
    server and the host in the curl samples; without it the server is relative ("/") and
    the samples use http://localhost:3000."""
    from smsnodes_hub.api import openapi_webhooks  # imports this module's builders: imported late

    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "smsnodes-hub HTTP API",
            "version": __version__,
            "summary": "Send SMS through your own Android phones.",
            "description": DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": base_url.rstrip("/") if base_url else "/",
                     "description": "This hub."}],
        "tags": [
            {"name": "SMS", "description": "Sending (SMS Nodes compatible)."},
            {"name": "Health", "description": "Monitoring (SMS Nodes compatible)."},
            {"name": "Messages", "description": "Extension: status, history and cancel."},
            {"name": "Tokens", "description": "Extension: API tokens for scripts."},
            {"name": "Device", "description": "Extension: the phone's presence and pacing."},
            *openapi_webhooks.TAGS,
            {"name": "Meta", "description": "This description."},
        ],
        "paths": {
            "/api/send-sms": {"post": _send_sms(base)},
            "/api/health": {"get": _health(base)},
            "/api/messages": {"get": _list_messages(base)},
            "/api/messages/{id}": {"get": _get_message(base), "delete": _cancel_message(base)},
            "/api/tokens": {"post": _create_token(base), "get": _list_tokens(base)},
            "/api/tokens/{id}": {"delete": _revoke_token(base)},
            "/api/device": {"get": _get_device(base)},
            "/api/device/pacing": {"put": _put_pacing(base)},
            **openapi_webhooks.paths(base),
            "/api/openapi.json": {"get": _get_openapi(base)},
        },
        "webhooks": openapi_webhooks.events(),
        "components": _components(),
    }


# -- The handler ------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _served() -> tuple[bytes, str]:
    """The document as served (relative server URL, so it is the same for every host)."""
    body = orjson.dumps(document())
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'


async def get_openapi(request: web.Request) -> web.Response:
    body, etag = _served()
    headers = {"ETag": etag, "Cache-Control": "public, max-age=300"}
    wanted = {tag.strip().removeprefix("W/") for tag in
              request.headers.get("If-None-Match", "").split(",")}
    if etag in wanted or "*" in wanted:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=JSON, headers=headers)
