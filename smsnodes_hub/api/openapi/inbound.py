"""/api/inbound: the SMS the account's phones received."""

from __future__ import annotations

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
)
from smsnodes_hub.device.protocol import MAX_SENDER

TAG = {"name": "Inbound", "description": "Extension: SMS the phones received."}
INBOUND = {"id": 88, "from": "+1234567890", "message": "Yes, see you at 9.",
           "receivedAt": "2026-11-21T10:31:02.000Z", "createdAt": "2026-11-21T10:31:02.410Z",
           "deviceId": 1}
INBOUND_OLDER = {"id": 87, "from": "+0987654321", "message": "STOP",
                 "receivedAt": "2026-11-21T09:12:45.000Z",
                 "createdAt": "2026-11-21T09:12:45.300Z", "deviceId": 1}


def _list_inbound(base: str) -> Json:
    return operation(
        "Inbound", "listInbound", "List received SMS",
        "Extension. The SMS the account's phones received, newest first, in pages, "
        "decrypted for their owner. Filters combine.",
        parameters=[
            query("from", "Only SMS from this sender: a number is cleaned like phoneNumbers "
                          "(`+1 234 567-890` matches `+1234567890`), a sender ID such as "
                          "`AMAZON` matches as written.",
                  {"type": "string"}, "+1234567890"),
            *period("SMS received"),
            *pages("Items per page."),
        ],
        responses={
            "200": ok("One page.", "InboundPage",
                      ("page", "The first page", page([INBOUND, INBOUND_OLDER], per_page=2,
                                                      total=3, total_pages=2)),
                      EMPTY_PAGE),
            "400": error("A query parameter is invalid (the message names it).",
                         ("Bad from", "from must be a phone number or sender name of 1 to "
                                      f"{MAX_SENDER} characters"),
                         BAD_SINCE, BAD_PER_PAGE),
        },
        curl=curl(f"{base}/api/inbound?from=%2B1234567890&per_page=50"),
    )


def paths(base: str) -> Json:
    return {
        "/api/inbound": {"get": _list_inbound(base)},
        "/api/inbound/{id}": {"get": operation(
            "Inbound", "getInbound", "Read a received SMS",
            "Extension. One received SMS of the account.",
            parameters=[param("InboundId")],
            responses={
                "200": ok("The SMS.", "InboundMessage", ("received", "A reply", INBOUND)),
                "404": not_found("No such SMS of this account.",
                                 "Inbound message 88 not found"),
            },
            curl=curl(f"{base}/api/inbound/88"),
        )},
    }
