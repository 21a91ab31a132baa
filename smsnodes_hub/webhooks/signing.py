"""Signing secrets, Standard Webhooks signatures and event ids."""

from __future__ import annotations

import base64
import hmac
import os
from hashlib import sha256
from typing import Any

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SECRET_PURPOSE = "webhook/secret"  # noqa: S105 - an AAD label
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode("ascii")


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the secret's
    base64-decoded part after `whsec_`."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def event_id(value: Any) -> str:
    return f"evt_{value.hex}"
