"""The events a webhook can subscribe to, and the check of a registration's list of them."""

from __future__ import annotations

import orjson

from smsnodes_hub.webhooks.errors import WebhookError

EVENTS = (
    "sms.received",
    "message.sent",
    "message.delivered",
    "message.failed",
    "message.expired",
    "message.cancelled",
    "device.online",
    "device.offline",
)


def _shown(value: object, limit: int = 40) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_events(raw: object) -> list[str]:
    if raw is None:
        raise WebhookError(f"events is required: a list of event names ({', '.join(EVENTS)})")
    if not isinstance(raw, list):
        raise WebhookError("events must be a list of event names")
    if not raw:
        raise WebhookError("events must name at least one event")
    seen: set[str] = set()
    for item in raw:
        if not isinstance(item, str) or item not in EVENTS:
            raise WebhookError(
                f"events: unknown event {_shown(item)}: use {', '.join(EVENTS)}"
            )
        if item in seen:
            raise WebhookError(f"events: {item} is listed twice")
        seen.add(item)
    return list(raw)
