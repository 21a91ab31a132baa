"""/api/device: the phone's presence, telemetry and pacing."""

from __future__ import annotations

from smsnodes_hub.api.device import ONE_PHONE
from smsnodes_hub.api.openapi.builders import (
    NOT_AN_OBJECT,
    Json,
    curl,
    error,
    ok,
    operation,
    request,
    too_large,
)
from smsnodes_hub.device.store import MAX_PACE

FORBIDDEN_ACCOUNT = error("These are an account's own credentials, which name no single phone: "
                          "use the phone's (the account's phones are at /api/devices).",
                          ("The account's credentials", ONE_PHONE))
TAG = {"name": "Device", "description": "Extension: the phone's presence and pacing."}
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
NEVER_CONNECTED = {
    **DEVICE, "online": False, "connectedSince": None, "lastSeenAt": None, "model": None,
    "app": None, "sims": None, "battery": None, "charging": None, "signal": None,
    "telemetryAt": None, "pacing": {"perMinute": None},
}


def _put_pacing(base: str) -> Json:
    return operation(
        "Device", "setPacing", "Set the device's pacing",
        "Extension. At most `perMinute` SMS per minute from this device (carriers block "
        "phones that send too fast); `null` removes the limit. Applies at once, also to "
        "messages already waiting.",
        body=request("The new pacing.", "Pacing",
                     ("limit", "At most 20 SMS per minute", {"perMinute": 20}),
                     ("off", "No limit", {"perMinute": None})),
        responses={
            "200": ok("The pacing now in force.", "Pacing",
                      ("limit", "Set", {"perMinute": 20})),
            "400": error(
                "`perMinute` is missing or out of range, or the body is not a JSON object.",
                ("Missing", "perMinute is required (a number of SMS per minute, or null)"),
                ("Out of range", f"perMinute must be a whole number from 1 to {MAX_PACE}, "
                                 "or null"),
                ("Not a JSON object", NOT_AN_OBJECT),
            ),
            "403": FORBIDDEN_ACCOUNT,
            "413": too_large(),
        },
        curl=curl(f"{base}/api/device/pacing", method="PUT", data={"perMinute": 20}),
    )


def paths(base: str) -> Json:
    return {
        "/api/device": {"get": operation(
            "Device", "getDevice", "Read the device's presence and telemetry",
            "Extension. Whether the phone is connected, what it last reported (battery, "
            "charging, signal) and its pacing.",
            responses={
                "200": ok("The device.", "Device",
                          ("online", "Connected, with telemetry", DEVICE),
                          ("new", "Never connected", NEVER_CONNECTED)),
                "403": FORBIDDEN_ACCOUNT,
                "404": error("The device account was removed.", ("Gone", "Device not found")),
            },
            curl=curl(f"{base}/api/device"),
        )},
        "/api/device/pacing": {"put": _put_pacing(base)},
    }
