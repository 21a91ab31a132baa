"""POST /api/send-sms: the SMS Nodes compatible way to send."""

from __future__ import annotations

import orjson

from smsnodes_hub.api.errors import DATABASE_ERROR, DATABASE_UNAVAILABLE, INTERNAL_ERROR
from smsnodes_hub.api.openapi.builders import (
    NOT_AN_OBJECT,
    RATE_HEADERS,
    RETRY_AFTER,
    Json,
    compact,
    error,
    header,
    json_body,
    ok,
    operation,
    param,
    ref,
    too_large,
)
from smsnodes_hub.api.send_sms import (
    INVALID_CREDENTIALS,
    MAX_TEXT,
    MISSING_CREDENTIALS,
    RATE_LIMITED,
    SIM_INVALID,
)
from smsnodes_hub.messaging.idempotency import HEADER as IDEMPOTENCY_HEADER
from smsnodes_hub.messaging.idempotency import MAX_KEY

TAG = {"name": "SMS", "description": "Sending (SMS Nodes compatible)."}
IDEMPOTENCY_CONFLICT = f"{IDEMPOTENCY_HEADER} was already used with a different request"
SEED_REQUEST = {
    "deviceUsername": "your_device_name",
    "password": "your_device_password",
    "phoneNumbers": ["+1234567890", "+0987654321"],
    "message": "Hello from SMS Nodes!",
    "priority": 1,
}
BASIC_BODY = {"phoneNumbers": ["+1234567890"], "message": "Hello"}
DESCRIPTION = (
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
)


def _sent(message_id: int, *, online: bool, now: bool, segments: int, per_recipient: int,
          encoding: str, scheduled: bool = False) -> Json:
    """An example answer."""
    return {"message": f"SMS {'scheduled' if scheduled else 'queued'} successfully",
            "messageId": message_id, "deviceOnline": online, "sentImmediately": now,
            "segments": segments, "segmentsPerRecipient": per_recipient,
            "encoding": encoding}


def _send_sms(base: str) -> Json:
    limited = {**RATE_HEADERS, **RETRY_AFTER}
    return operation(
        "SMS", "sendSms", "Send an SMS", DESCRIPTION,
        security=[{}, {"basicAuth": []}, {"bearerAuth": []}],
        parameters=[param("Idempotency-Key")],
        body={
            "required": True,
            "description": "The message and, without an Authorization header, the "
                           "credentials.",
            "content": json_body(
                ref("SendSms"),
                ("seed", "The SMS Nodes example, credentials in the body", SEED_REQUEST),
                ("basic", "With Authorization: Basic or Bearer (no credentials in the body)",
                 BASIC_BODY),
                ("scheduled", "Extension: scheduled, with an expiry",
                 {"phoneNumbers": ["+1234567890"],
                  "message": "Reminder: your appointment is tomorrow at 9:00.",
                  "priority": 2, "scheduledAt": "2026-11-22T08:00:00Z",
                  "expiresAt": "2026-11-22T09:00:00Z"}),
                ("ttl", "Extension: not worth sending after 10 minutes",
                 {"phoneNumbers": ["+1 (234) 567-890", "12345"],
                  "message": "Your login code is 482913", "priority": 5, "ttl": 600}),
                ("sim", "Extension: from the phone's second SIM",
                 {"phoneNumbers": ["+1234567890"], "message": "Hello", "sim": 2}),
            ),
        },
        responses={
            "200": ok(
                "Stored and queued (or scheduled).", "SendSmsResponse",
                ("queued", "Pushed to the connected phone at once",
                 _sent(123, online=True, now=True, segments=2, per_recipient=1,
                       encoding="GSM-7")),
                ("offline", "The phone is offline: it gets the message when it connects",
                 _sent(124, online=False, now=False, segments=2, per_recipient=2,
                       encoding="UCS-2")),
                ("scheduled", "Scheduled for later",
                 _sent(125, online=True, now=False, segments=1, per_recipient=1,
                       encoding="GSM-7", scheduled=True)),
                headers=RATE_HEADERS,
            ),
            "400": error(
                "A body that is not a JSON object (an empty one too), missing credentials, "
                "or an invalid field (the message names it).",
                ("No username or password", MISSING_CREDENTIALS),
                ("Not a JSON object, or empty", NOT_AN_OBJECT),
                ("A bad phone number", 'phoneNumbers[1]: invalid phone number "call me": use '
                 "+ and the country code (6 to 15 digits), or a short code of 3 to 8 digits; "
                 "for national numbers such as 0612345678 set messaging.default_region"),
                ("A bad national number (messaging.default_region = NL)",
                 'phoneNumbers[0]: invalid phone number "06 1234 567": use a number of '
                 "region NL (messaging.default_region), + and the country code (6 to 15 "
                 "digits), or a short code of 3 to 8 digits"),
                ("Text too long", f"message must be at most {MAX_TEXT} characters"),
                ("Bad priority", "priority must be an integer from 1 to 5"),
                ("Bad SIM slot", SIM_INVALID),
                ("ttl with expiresAt", "ttl and expiresAt cannot be used together"),
                ("ttl ends before scheduledAt", "ttl must end after scheduledAt: it counts "
                                                "seconds from now, not from scheduledAt"),
                ("Bad Idempotency-Key", f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_KEY} "
                                        "printable characters"),
                headers=RATE_HEADERS,
            ),
            "401": error("Wrong username or password, or an invalid token.",
                         ("Wrong credentials", INVALID_CREDENTIALS), headers=RATE_HEADERS),
            "409": error("Extension: the `Idempotency-Key` was used before with a different "
                         "request.", ("Key reused", IDEMPOTENCY_CONFLICT),
                         headers=RATE_HEADERS),
            "413": too_large(headers=RATE_HEADERS),
            "429": error("The account's send limit is used up, the client address sent too "
                         "many refused requests, or it is locked out after failed logins; "
                         "or (extension) the send would pass the account's daily or monthly "
                         "quota: `{\"error\": \"Quota exceeded\", \"code\": "
                         "\"quota_exceeded\"}`, `Retry-After` the seconds until that period "
                         "resets (midnight UTC, or the first day of the month); nothing is "
                         "stored.",
                         ("Rate limited", RATE_LIMITED), headers=limited),
            "405": error("A method other than POST.", ("Wrong method", "Method not allowed"),
                         headers={**RATE_HEADERS, "Allow": header("Allow")}),
            "500": error("The database refused a statement for another reason than being "
                         "unreachable (the SMS Nodes gateway's own 500 body), or a bug; "
                         "logged by the hub. Nothing is stored.",
                         ("Database error", DATABASE_ERROR),
                         ("Bug", INTERNAL_ERROR), headers=RATE_HEADERS),
            "503": error("The database cannot be reached (the SMS Nodes gateway answered "
                         "500 \"Database error\").", ("Database down", DATABASE_UNAVAILABLE),
                         headers=limited),
        },
        curl=(
            f"curl -sS -X POST {base}/api/send-sms \\\n"
            "  -H 'Content-Type: application/json' \\\n"
            f"  -d '{orjson.dumps(SEED_REQUEST, option=orjson.OPT_INDENT_2).decode()}'\n\n"
            "# With HTTP Basic and an Idempotency-Key; -i shows the X-RateLimit-* headers\n"
            f"curl -sS -i -u 'your_device_name:your_device_password' {base}/api/send-sms \\\n"
            "  -H 'Content-Type: application/json' \\\n"
            "  -H 'Idempotency-Key: order-4711-shipped' \\\n"
            f"  -d '{compact(BASIC_BODY)}'"
        ),
    )


def paths(base: str) -> Json:
    return {"/api/send-sms": {"post": _send_sms(base)}}
