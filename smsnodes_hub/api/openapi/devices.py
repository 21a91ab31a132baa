"""/api/devices: the account's phones (ACCOUNTS.md "Managing phones")."""

from __future__ import annotations

from smsnodes_hub.api.auth import ACCOUNT_ONLY
from smsnodes_hub.api.openapi.builders import (
    NOT_AN_OBJECT,
    Json,
    curl,
    error,
    not_found,
    ok,
    operation,
    param,
    request,
    too_large,
)
from smsnodes_hub.api.openapi.device import DEVICE, NEVER_CONNECTED

TAG = {"name": "Devices", "description": "Extension: the phones of an account "
       "(docs/accounts.md). Adding and removing need the account's own credentials."}
ACCOUNT_LOGIN = "-u 'acme:account password'"
LOADED = {**DEVICE, "queued": 3, "inFlight": 2, "sentToday": 148}
NEW = {**NEVER_CONNECTED, "id": 2, "username": "acme-2", "queued": 0, "inFlight": 0,
       "sentToday": 0}
FORBIDDEN = error("These are a phone's credentials: only the account itself may do this.",
                  ("A phone's credentials", ACCOUNT_ONLY))


def paths(base: str) -> Json:
    return {
        "/api/devices": {
            "post": operation(
                "Devices", "addDevice", "Add a phone to the account",
                "Extension. A new phone of the authenticated account, which must be the "
                "account itself: Basic with the account's name and password, or an account "
                "token (the hub needs the account's key to wrap it under the phone's "
                "password). The phone then logs in on /ws/device with this username and "
                "password.",
                body=request("The phone's name and password.", "NewDeviceRequest",
                             ("phone", "A second phone",
                              {"username": "acme-2", "password": "a long phone password"})),
                responses={
                    "201": ok("Created: the phone as GET /api/devices shows it.",
                              "AccountDevice", ("new", "Not connected yet", NEW)),
                    "400": error(
                        "A field is missing or invalid, or the body is not a JSON object.",
                        ("Missing", "username and password are required"),
                        ("Bad name", "username must be 3 to 64 characters: letters, digits, "
                                     "'.', '_' or '-'"),
                        ("Short password", "password must be at least 8 characters"),
                        ("Not a JSON object", NOT_AN_OBJECT)),
                    "403": FORBIDDEN,
                    "409": error("An account or a phone already has this name.",
                                 ("Taken", "a phone or account named 'acme-2' already "
                                           "exists")),
                    "413": too_large(),
                },
                curl=curl(f"{base}/api/devices", method="POST", login=ACCOUNT_LOGIN,
                          data={"username": "acme-2", "password": "a long phone password"}),
            ),
            "get": operation(
                "Devices", "listDevices", "List the account's phones",
                "Extension. Every phone of the caller's account, oldest first, each with "
                "what GET /api/device shows and its load: `queued` (waiting for it), "
                "`inFlight` (pushed, not acked) and `sentToday`. Any credential of the "
                "account may list.",
                responses={"200": ok("The phones.", "AccountDeviceList",
                                     ("two", "Two phones", {"data": [LOADED, NEW]}))},
                curl=curl(f"{base}/api/devices", login=ACCOUNT_LOGIN),
            ),
        },
        "/api/devices/{id}": {"delete": operation(
            "Devices", "removeDevice", "Remove a phone",
            "Extension. The phone can no longer log in (its socket closes, its tokens end). "
            "Its routed messages that it has not acked go back to the account's pool for "
            "another phone; messages pinned to it end `cancelled`. Its sent messages and "
            "received SMS stay in the account's history.",
            parameters=[param("DeviceId")],
            responses={
                "200": ok("Removed.", "RemovedDevice",
                          ("removed", "Removed", {"id": 2, "removed": True})),
                "403": FORBIDDEN,
                "404": not_found("No such phone of this account.", "Device 2 not found"),
            },
            curl=curl(f"{base}/api/devices/2", method="DELETE", login=ACCOUNT_LOGIN),
        )},
    }
