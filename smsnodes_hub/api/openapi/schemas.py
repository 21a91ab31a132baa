"""Component schemas of the API's resources: errors, sending, health, messages, tokens and
the device (webhook_schemas.py has those of received SMS, webhooks and their events).

Schemas are open (no `additionalProperties: false`): HTTP-API.md lets extensions add
fields, so clients must tolerate new ones. tests/api/test_openapi.py closes them to catch
drift."""

from __future__ import annotations

from smsnodes_hub.api.openapi.builders import (
    NUMBER_PATTERN,
    Json,
    gone,
    list_of,
    moment,
    obj,
    page_of,
    ref,
    timestamp,
)
from smsnodes_hub.api.send_sms import MAX_AHEAD, MAX_TEXT
from smsnodes_hub.auth.tokens import MAX_NAME
from smsnodes_hub.device.store import MAX_PACE
from smsnodes_hub.messaging.messages import STATUSES
from smsnodes_hub.messaging.phones import MAX_RECIPIENTS

MAX_AHEAD_SECONDS = int(MAX_AHEAD.total_seconds())
RECIPIENT_STATUSES = [s for s in STATUSES if s != "partial"]


def schemas() -> Json:
    """The schemas of the API's resources (webhook_schemas.py adds the webhooks')."""
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
        "createdAt": timestamp("When the token was created."),
        "lastUsedAt": timestamp("When the token last authenticated a request, or null "
                                 "if never.", nullable=True),
        "device": {"type": ["string", "null"], "description": "The phone the token belongs "
                   "to (its sends go to that phone), or null for a token of the account "
                   "itself (its sends are routed to the account's phones)."},
    }
    token_required = ["id", "kind", "name", "createdAt", "lastUsedAt"]
    device_properties, device_required = _device_schema()
    send_sms_request: Json = {
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
                "description": "1 to 100 recipients, sent to the phone in E.164 "
                               "(`+31612345678`). Digits with spaces, dashes, dots or "
                               "parentheses between them; each is `+` and the country "
                               "code (a number libphonenumber knows is written in "
                               "E.164; one it does not is kept as written when it has "
                               "6 to 15 digits), a national number such as "
                               "`0612345678` when the hub's `messaging.default_region` "
                               "is set (`NL`), or a short code of 3 to 8 digits. "
                               "Duplicates (as sent) go once. A bad entry refuses the "
                               "whole request with a 400 naming it.",
            },
            "message": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT,
                        "description": "The text: 1 to 1600 characters (code points). "
                                       "Long texts are sent as concatenated SMS."},
            "priority": {"type": ["integer", "null"], "minimum": 1, "maximum": 5,
                         "default": 1, "description": "1 (default, lowest) to 5 "
                         "(highest). A JSON integer; null means 1. Waiting messages "
                         "go to the phone highest priority first, oldest first."},
            "scheduledAt": moment("Extension: not pushed to the phone before this "
                                   "moment (ISO 8601; without an offset it is UTC), "
                                   "at most a year ahead. A moment already past means "
                                   "now."),
            "expiresAt": moment("Extension: never sent after this moment (in the "
                                 "future, at most a year ahead, after `scheduledAt`); "
                                 "recipients not yet sent by then end `expired`."),
            "ttl": {"type": "integer", "minimum": 1, "maximum": MAX_AHEAD_SECONDS,
                    "description": "Extension: seconds from now, the same as "
                                   "`expiresAt` (give one, not both)."},
        },
    }
    out: Json = {
        "Error": obj(
            {"error": {"type": "string", "description": "A human-readable reason. It never "
                       "contains a password. Match on the status code, not on this text, "
                       "except for the SMS Nodes strings documented on each operation."},
             "code": {"type": "string", "description": "A stable machine-readable code for "
                      "the error, e.g. `not_found`; the `error` text is for humans."}},
            ["error"], "Every error of every /api/ endpoint.",
        ),
        "SendSmsRequest": send_sms_request,
        # The operation's body: SendSmsRequest (the SMS Nodes fields and the hub's first
        # extensions, kept as it was) and the fields of accounts with several phones.
        "SendSms": {**send_sms_request, "properties": {
            **send_sms_request["properties"],
            "device": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9._-]{3,64}$",
                       "description": "Extension: with the account's credentials, pin the "
                       "message to this phone of the account (without it the hub chooses the "
                       "phone); a name the account does not own is a 400. With a phone's "
                       "credentials only that phone's own name is accepted."},
            "sim": {"type": ["integer", "null"], "enum": [1, 2, None], "description":
                    "Extension: the SIM slot the phone sends from, 1 or 2 (carried in the "
                    "`sms` frame; a phone with one SIM ignores it)."},
        }},
        "SendSmsResponse": obj(
            {
                "message": {"type": "string", "enum": ["SMS queued successfully",
                                                       "SMS scheduled successfully"],
                            "description": "\"SMS scheduled successfully\" when "
                                           "`scheduledAt` is in the future."},
                "messageId": {"type": "integer", "description": "The message's id, for "
                              "GET and DELETE /api/messages/{id}."},
                "deviceOnline": {"type": "boolean", "description": "The device has a live "
                                 "connection now (to any hub process sharing the database); "
                                 "for a routed send (the account's credentials), some phone "
                                 "of the account has."},
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
                "remainingQuota": {"type": "integer", "description": "Extension, only when "
                                   "the account has a quota: the SMS it may still send, of "
                                   "the smaller of today's and this month's (as NEXSMS)."},
                "device": {"type": ["string", "null"], "description": "Extension: the phone "
                           "chosen now: the phone itself for a phone's credentials or "
                           "`device`; for the account's (routed) the one the hub chose, null "
                           "while no phone of the account can take it (it waits in the "
                           "account's pool)."},
            },
            ["message", "messageId", "deviceOnline", "sentImmediately"],
            "The message is safely stored. `deviceOnline: false` is not an error: the phone "
            "gets the message the moment it connects.",
        ),
        "Health": obj(
            {
                "status": {"type": "string", "enum": ["healthy", "unhealthy"]},
                "timestamp": timestamp("The hub's clock, UTC."),
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
        "Recipient": obj(
            {
                "to": {**number_out, "description": "The cleaned phone number (null if its "
                       "stored ciphertext cannot be opened)."},
                "status": ref("RecipientStatus"),
                "error": {"type": ["string", "null"], "description": "The phone's reason "
                          "for a failed recipient, else null (also while a failed recipient "
                          "waits for its retry: that attempt's error is in `events`)."},
                "attempt": {"type": "integer", "minimum": 1, "description": "The delivery "
                            "attempt (failed recipients may be retried)."},
                "updatedAt": timestamp("When this recipient's status last changed."),
            },
            ["to", "status", "error", "attempt", "updatedAt"], "One recipient of a message.",
        ),
        "MessageEvent": obj(
            {
                "status": ref("RecipientStatus"),
                "to": {**number_out, "description": "The recipient for a per-recipient "
                       "step, null for a step of the whole message."},
                "at": timestamp("When it happened."),
                "attempt": {"type": ["integer", "null"], "minimum": 1,
                            "description": "The delivery attempt it belongs to."},
                "error": {"type": "string", "description": "The reason of a failure "
                          "(present only then)."},
                "reportedAt": timestamp("The phone's own time of a status report, when it "
                                         "gave one (`at` is the hub's clock)."),
                "device": {"type": ["string", "null"], "description": "On a `dispatched` "
                           "event only: the phone the attempt was pushed to (null if that "
                           "phone was removed since)."},
            },
            ["status", "to", "at", "attempt"], "One step of a message's timeline.",
        ),
        "Message": obj(
            {
                "id": {"type": "integer"},
                "status": ref("MessageStatus"),
                "message": {"type": ["string", "null"], "description": "The text (null if "
                            "its stored ciphertext cannot be opened)."},
                "priority": {"type": "integer", "minimum": 1, "maximum": 5},
                "attempt": {"type": "integer", "minimum": 1,
                            "description": "The message's latest delivery attempt."},
                "createdAt": timestamp("When the hub accepted it."),
                "scheduledAt": timestamp("Not pushed before then; null to send at once.",
                                          nullable=True),
                "expiresAt": timestamp("Never sent after then; null for no expiry.",
                                        nullable=True),
                "recipients": {"type": "array", "items": ref("Recipient"), "minItems": 1},
                "segments": {"type": "integer", "minimum": 0,
                             "description": "SMS in all: per recipient times recipients, "
                                            "as in the send-sms answer (absent with "
                                            "`message` null)."},
                "segmentsPerRecipient": {"type": "integer", "minimum": 0,
                                         "description": "SMS per recipient."},
                "encoding": {"type": "string", "enum": ["GSM-7", "UCS-2"]},
                "events": {"type": "array", "items": ref("MessageEvent"), "description":
                           "The timeline in time order; only on a single message (GET or "
                           "DELETE /api/messages/{id}), not in the history."},
            },
            ["id", "status", "message", "priority", "attempt", "createdAt", "scheduledAt",
             "expiresAt", "recipients"],
            "One message of the caller's account, decrypted for its owner. The overall "
            "`status` is the least advanced status of the recipients that have not ended; "
            "once all have ended, their common status, or `partial`.",
        ),
        "MessagePage": page_of("Message", order="Newest first.",
                               total="Messages matching the filters, on all pages.",
                               description="One page of the history."),
        "CreateTokenRequest": {
            "type": "object",
            "description": "Optional: an empty body is the same as `{}`.",
            "properties": {"name": {"type": ["string", "null"], "minLength": 1,
                                    "maxLength": MAX_NAME,
                                    "description": "A label, to tell tokens apart."}},
        },
        "Token": obj(token_properties, token_required, "An API token (never the secret)."),
        "NewToken": obj(
            {**token_properties, "token": {"type": "string", "pattern": "^snh_",
                                           "description": "The secret: shown this once."}},
            [*token_required, "token"],
            "A new API token, with its secret. Use it as `Authorization: Bearer <token>`.",
        ),
        "TokenList": list_of("Token", "The device's API tokens, oldest first."),
        "RevokedToken": gone("revoked", "The token no longer authenticates anything."),
        "Pacing": obj(
            {"perMinute": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_PACE,
                           "description": "At most this many SMS per minute from the "
                                          "device; null for no limit."}},
            ["perMinute"], "The device's pacing.",
        ),
        "Device": obj(device_properties, device_required,
                      "The authenticated device: presence, telemetry and pacing."),
        "AccountDevice": obj(
            {**device_properties,
             "queued": {"type": "integer", "minimum": 0, "description": "Messages waiting "
                        "for this phone (not pushed yet)."},
             "inFlight": {"type": "integer", "minimum": 0, "description": "Messages pushed "
                          "to it and not acked yet."},
             "sentToday": {"type": "integer", "minimum": 0, "description": "Recipients it "
                           "reported `sent` since midnight UTC."}},
            [*device_required, "queued", "inFlight", "sentToday"],
            "One phone of the account: what GET /api/device shows, and its load.",
        ),
        "AccountDeviceList": list_of("AccountDevice", "The account's phones, oldest first."),
        "NewDeviceRequest": obj(
            {"username": {"type": "string", "pattern": "^[A-Za-z0-9._-]{3,64}$",
                          "description": "The phone's name: 3 to 64 letters, digits, `.`, "
                                         "`_` or `-`; no account or phone may have it yet."},
             "password": {"type": "string", "minLength": 8, "maxLength": 1024,
                          "format": "password", "description": "The phone's own password "
                          "(it logs in on /ws/device with these two)."}},
            ["username", "password"], "A new phone of the authenticated account.",
        ),
        "RemovedDevice": gone("removed", "The phone can no longer log in."),
        "QuotaPeriod": {
            "type": ["object", "null"], "description": "One period's quota; null: no limit.",
            "required": ["limit", "used", "remaining", "resetsAt"],
            "properties": {
                "limit": {"type": "integer", "minimum": 1, "description": "SMS at most."},
                "used": {"type": "integer", "minimum": 0, "description": "SMS counted so "
                         "far in this period."},
                "remaining": {"type": "integer", "minimum": 0},
                "resetsAt": timestamp("When the period starts again (UTC)."),
            },
        },
        "Quota": obj({"daily": ref("QuotaPeriod"), "monthly": ref("QuotaPeriod")},
                     ["daily", "monthly"], "The account's quota of SMS."),
    }
    return out


def _device_schema() -> tuple[Json, list[str]]:
    return (
            {
                "id": {"type": "integer"},
                "username": {"type": "string"},
                "online": {"type": "boolean", "description": "Has a live connection now."},
                "connectedSince": timestamp("Start of the live connection.", nullable=True),
                "lastSeenAt": timestamp("Last sign of life from the phone.", nullable=True),
                "createdAt": timestamp("When the account was created."),
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
                "telemetryAt": timestamp("When the latest telemetry arrived.",
                                          nullable=True),
                "pacing": ref("Pacing"),
            },
            ["id", "username", "online", "connectedSince", "lastSeenAt", "createdAt", "model",
             "app", "sims", "battery", "charging", "signal", "telemetryAt", "pacing"],
    )


