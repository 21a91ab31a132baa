"""/api/messages: a message's status and timeline, the history, and cancelling."""

from __future__ import annotations

from smsnodes_hub.api.messages import cannot_cancel
from smsnodes_hub.api.openapi.builders import (
    BAD_PER_PAGE,
    BAD_SINCE,
    EMPTY_PAGE,
    Json,
    curl,
    error,
    not_found,
    ok,
    operation,
    page,
    pages,
    param,
    period,
    query,
    ref,
)
from smsnodes_hub.messaging.messages import STATUSES

TAG = {"name": "Messages", "description": "Extension: status, history and cancel."}

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


def _get_message(base: str) -> Json:
    return operation(
        "Messages", "getMessage", "Read a message's status and timeline",
        "Extension. The message with each recipient's status and the `events` timeline, in "
        "time order. Only the account that sent it can read it; any other gets a 404.",
        parameters=[param("MessageId")],
        responses={
            "200": ok(
                "The message.", "Message",
                ("delivered", "Delivered", MESSAGE_DELIVERED),
                ("partial", "One recipient delivered, one failed", MESSAGE_PARTIAL),
                ("scheduled", "Scheduled, waiting for its time",
                 {**MESSAGE_SCHEDULED, "events": [
                     {"status": "scheduled", "to": None, "at": "2026-11-21T10:10:00.000Z",
                      "attempt": 1}]}),
            ),
            "404": not_found("No such message of this account.", "Message 123 not found"),
        },
        curl=curl(f"{base}/api/messages/123"),
    )


def _list_messages(base: str) -> Json:
    return operation(
        "Messages", "listMessages", "List sent messages",
        "Extension. The account's messages, newest first, in pages, without their `events` "
        "(read one message for its timeline). Filters combine.",
        parameters=[
            query("status", "Only messages whose overall status is this.",
                  ref("MessageStatus"), "delivered"),
            *period("messages created"),
            query("to", "Only messages to this phone number (cleaned like phoneNumbers, so "
                        "`+1 234 567-890` matches `+1234567890`).",
                  {"type": "string"}, "+1234567890"),
            *pages("Messages per page."),
        ],
        responses={
            "200": ok(
                "One page.", "MessagePage",
                ("page", "The first page",
                 page([_listed(MESSAGE_PARTIAL), _listed(MESSAGE_DELIVERED)],
                      per_page=2, total=3, total_pages=2)),
                EMPTY_PAGE,
            ),
            "400": error(
                "A query parameter is invalid (the message names it).",
                ("Bad status", f"status must be one of {', '.join(STATUSES)}"),
                BAD_SINCE, BAD_PER_PAGE,
                ("Bad to", "to must be a phone number"),
            ),
        },
        curl=curl(f"{base}/api/messages?status=failed&since=2026-11-21T00:00:00Z&per_page=50"),
    )


def _cancel_message(base: str) -> Json:
    return operation(
        "Messages", "cancelMessage", "Cancel a message",
        "Extension. Every recipient not yet sent ends `cancelled`; a phone holding the "
        "message is told to drop it (one that sent it anyway reports the truth later). "
        "Answers the message as it now stands.",
        parameters=[param("MessageId")],
        responses={
            "200": ok("Cancelled.", "Message",
                      ("cancelled", "Cancelled while queued", MESSAGE_CANCELLED)),
            "404": not_found("No such message of this account.", "Message 126 not found"),
            "409": error(
                "Nothing left to cancel; the reason follows the message's overall status.",
                *[(summary, cannot_cancel(126, status)) for summary, status in (
                    ("Already sent", "sent"), ("Already delivered", "delivered"),
                    ("Already failed", "failed"), ("Already cancelled", "cancelled"),
                    ("Expired", "expired"), ("Every recipient ended", "partial"))],
            ),
        },
        curl=curl(f"{base}/api/messages/126", method="DELETE"),
    )


def paths(base: str) -> Json:
    return {
        "/api/messages": {"get": _list_messages(base)},
        "/api/messages/{id}": {"get": _get_message(base), "delete": _cancel_message(base)},
    }
