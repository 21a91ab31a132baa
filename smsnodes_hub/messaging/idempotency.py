"""Idempotency-Key on send-sms: a repeat of a request within 24 hours gets the first
response and creates nothing, even when both arrive at the same moment."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

import orjson

from smsnodes_hub.auth import crypto
from smsnodes_hub.auth.accounts import Executor, Principal

HEADER = "Idempotency-Key"
MAX_KEY = 255
LIFETIME_HOURS = 24


@dataclass(frozen=True, slots=True)
class Prior:
    same_request: bool
    response: dict[str, Any] | None
    message_id: int | None


def fingerprint(principal: Principal, request: dict[str, Any]) -> bytes:
    """A keyed hash of the request: tells a true repeat from a reused key without storing
    anything that would reveal the text or the numbers."""
    key = crypto.idempotency_key(principal.data_key)
    return hmac.new(key, orjson.dumps(request, option=orjson.OPT_SORT_KEYS), sha256).digest()


async def reserve(db: Executor, account_id: int, key: str, request_hash: bytes) -> Prior | None:
    """Claim the key for this request (None), or return what the first request left.

    Call inside the transaction that stores the message: a concurrent request with the same
    key waits on the row until that transaction ends, then sees its outcome."""
    claimed = await db.fetchval(
        """INSERT INTO idempotency_keys (account_id, key, request_hash) VALUES ($1, $2, $3)
           ON CONFLICT (account_id, key) DO UPDATE
                 SET request_hash = EXCLUDED.request_hash, message_id = NULL, response = NULL,
                     created_at = now()
               WHERE idempotency_keys.created_at < now() - make_interval(hours => $4)
           RETURNING true""",
        account_id, key, request_hash, LIFETIME_HOURS,
    )
    if claimed:
        return None
    row = await db.fetchrow(
        "SELECT request_hash, response, message_id FROM idempotency_keys "
        "WHERE account_id = $1 AND key = $2",
        account_id, key,
    )
    assert row is not None
    response = orjson.loads(row["response"]) if row["response"] is not None else None
    return Prior(hmac.compare_digest(row["request_hash"], request_hash), response,
                 row["message_id"])


async def record(db: Executor, account_id: int, key: str, message_id: int,
                 response: dict[str, Any]) -> None:
    await db.execute(
        "UPDATE idempotency_keys SET message_id = $3, response = $4::jsonb "
        "WHERE account_id = $1 AND key = $2",
        account_id, key, message_id, orjson.dumps(response).decode(),
    )


async def prune(db: Executor) -> None:
    await db.execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)",
        LIFETIME_HOURS,
    )
