"""The whole document: `info`, tags, every path group in order, the webhook events and the
components."""

from __future__ import annotations

from typing import Protocol

from smsnodes_hub import __version__
from smsnodes_hub.api.openapi import (
    device,
    devices,
    events,
    health,
    inbound,
    messages,
    meta,
    quota,
    send_sms,
    tokens,
    webhooks,
)
from smsnodes_hub.api.openapi.builders import Json
from smsnodes_hub.api.openapi.components import components

DEFAULT_BASE_URL = "http://localhost:3000"


class PathGroup(Protocol):
    """A module of this package that documents some paths under one tag."""

    TAG: Json

    def paths(self, base: str) -> Json: ...


# In the document's order, of tags and of paths.
GROUPS: tuple[PathGroup, ...] = (send_sms, health, messages, tokens, device, devices, quota,
                                 inbound, webhooks, meta)

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
- Failed logins are throttled per client address and username: after
  `security.login_max_failures` (5 by default) wrong passwords for one username from one
  address, that address's logins with that username are answered
  `429 {"error": "Rate limit exceeded"}` with `Retry-After` for a while, even with the right
  password. Other accounts, tokens, and the owner from another address are not affected.
- No string in a request body may hold a NUL character: `400`, naming the field.
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
        "tags": [group.TAG for group in GROUPS],
        "paths": {path: item for group in GROUPS for path, item in group.paths(base).items()},
        "webhooks": events.events(),
        "components": components(),
    }
