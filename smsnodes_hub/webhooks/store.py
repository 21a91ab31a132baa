"""The Webhook record and its SQL: registrations and the listing of their deliveries."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from smsnodes_hub.auth.accounts import Executor, Principal
from smsnodes_hub.timefmt import iso
from smsnodes_hub.webhooks.errors import TooManyWebhooks, WebhookError
from smsnodes_hub.webhooks.hubkey import HubKey
from smsnodes_hub.webhooks.signing import SECRET_PURPOSE, new_secret

MAX_WEBHOOKS = 20  # per account
DELIVERY_STATES = ("pending", "delivered", "failed")


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    url: str
    events: list[str]
    active: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime
    last_success_at: datetime | None
    failing_since: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Webhook:
        return cls(row["id"], row["url"], list(row["events"]), row["active"],
                   row["disabled_reason"], row["created_at"], row["updated_at"],
                   row["last_success_at"], row["failing_since"])


_COLUMNS = ("id, url, events, active, disabled_reason, created_at, updated_at, "
            "last_success_at, failing_since")


async def create(db: Executor, principal: Principal, url: str, events: list[str],
                 hub_key: HubKey) -> tuple[Webhook, str]:
    """Store a webhook with a new signing secret, sealed with the account's data key and
    with the hub's webhook key. Returns it with the secret, which is never shown again."""
    secret = new_secret()
    sealed = principal.seal(secret, SECRET_PURPOSE)
    async with _connection(db) as conn, conn.transaction():
        # The account's row lock serialises creations, so the cap holds under races.
        if await conn.fetchval("SELECT id FROM accounts WHERE id = $1 FOR UPDATE",
                               principal.account_id) is None:
            raise WebhookError("the account no longer exists")
        count = await conn.fetchval("SELECT count(*) FROM webhooks WHERE account_id = $1",
                                    principal.account_id)
        if count >= MAX_WEBHOOKS:
            raise TooManyWebhooks(
                f"an account has at most {MAX_WEBHOOKS} webhooks: delete one first"
            )
        row = await conn.fetchrow(
            f"INSERT INTO webhooks (account_id, url, events, secret) "  # noqa: S608
            f"VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}",
            principal.account_id, url, events, sealed,
        )
        assert row is not None
        # The hub's seal is bound to the webhook's id, known only now.
        await store_hub_secret(conn, principal.account_id, row["id"], hub_key, secret)
    return Webhook.from_row(row), secret


async def store_hub_secret(db: Executor, account_id: int, webhook_id: int, key: HubKey,
                           secret: str) -> str | None:
    """Seal the secret with the hub's key as the webhook's hub copy. Returns the id (hex) of
    the key that sealed the copy it replaced, when another key had: every process should
    share one key."""
    return await db.fetchval(
        """WITH old AS (SELECT hub_key_id FROM webhooks WHERE id = $1 AND account_id = $2)
           UPDATE webhooks SET hub_secret = $3, hub_key_id = $4
            WHERE id = $1 AND account_id = $2
        RETURNING CASE WHEN (SELECT hub_key_id FROM old) <> $4
                       THEN encode((SELECT hub_key_id FROM old), 'hex') END""",
        webhook_id, account_id, key.seal(secret, account_id, webhook_id), key.key_id,
    )


async def without_hub_secret(db: Executor, account_ids: list[int],
                             key_id: bytes | None) -> list[asyncpg.Record]:
    """The webhooks of these accounts whose secret has no copy sealed with this key (made
    before migration 012, or sealed by a process with another key)."""
    return await db.fetch(
        """SELECT id, account_id, secret FROM webhooks
            WHERE account_id = ANY($1::bigint[]) AND hub_key_id IS DISTINCT FROM $2
            ORDER BY id""",
        account_ids, key_id,
    )


@contextlib.asynccontextmanager
async def _connection(db: Executor) -> Any:
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


async def list_webhooks(db: Executor, account_id: int) -> list[Webhook]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM webhooks WHERE account_id = $1 ORDER BY id",  # noqa: S608
        account_id,
    )
    return [Webhook.from_row(r) for r in rows]


async def get_webhook(db: Executor, account_id: int, webhook_id: int) -> Webhook | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM webhooks WHERE id = $1 AND account_id = $2",  # noqa: S608
        webhook_id, account_id,
    )
    return None if row is None else Webhook.from_row(row)


_UPDATE = """
WITH old AS (
    SELECT id, active FROM webhooks WHERE id = $1 AND account_id = $2 FOR UPDATE
), upd AS (
    UPDATE webhooks w SET
        url = coalesce($3, w.url),
        events = coalesce($4, w.events),
        active = coalesce($5, w.active),
        disabled_reason = CASE WHEN $5 IS TRUE THEN NULL
                               WHEN $5 IS FALSE AND w.active THEN 'disabled by its owner'
                               ELSE w.disabled_reason END,
        -- Re-activated, or pointed elsewhere: the failure clock starts again.
        failing_since = CASE WHEN ($5 IS TRUE AND NOT w.active) OR $3 <> w.url THEN NULL
                             ELSE w.failing_since END,
        updated_at = now()
      FROM old WHERE w.id = old.id
    RETURNING w.id, w.url, w.events, w.active, w.disabled_reason, w.created_at, w.updated_at,
              w.last_success_at, w.failing_since
), resume AS (
    -- Back from disabled: what waited is tried at once.
    UPDATE webhook_deliveries d SET next_attempt_at = now()
      FROM old
     WHERE d.webhook_id = old.id AND NOT old.active AND $5 IS TRUE
       AND d.state = 'pending' AND d.next_attempt_at > now()
)
SELECT * FROM upd
"""


async def update_webhook(
    db: Executor, account_id: int, webhook_id: int, *, url: str | None = None,
    events: list[str] | None = None, active: bool | None = None,
) -> Webhook | None:
    """Change what is given; `active=True` re-activates (clearing the reason and the
    failure clock, as a new URL also does). None when the account has no such webhook."""
    row = await db.fetchrow(_UPDATE, webhook_id, account_id, url, events, active)
    return None if row is None else Webhook.from_row(row)


async def delete_webhook(db: Executor, account_id: int, webhook_id: int) -> bool:
    """Delete the webhook with its outbox rows and their attempts."""
    return await db.fetchval(
        "DELETE FROM webhooks WHERE id = $1 AND account_id = $2 RETURNING id",
        webhook_id, account_id,
    ) is not None


async def list_deliveries(
    db: Executor, account_id: int, webhook_id: int, state: str | None, limit: int,
    offset: int,
) -> tuple[int, list[asyncpg.Record]] | None:
    """A page of the webhook's deliveries (newest first) with their attempts, and the
    total; None when the account has no such webhook."""
    if await get_webhook(db, account_id, webhook_id) is None:
        return None
    where = "d.webhook_id = $1 AND d.account_id = $2 AND ($3::text IS NULL OR d.state = $3)"
    total = await db.fetchval(
        f"SELECT count(*) FROM webhook_deliveries d WHERE {where}",  # noqa: S608
        webhook_id, account_id, state,
    )
    rows = await db.fetch(
        f"""SELECT d.id, d.event_id, d.event_type, d.state, d.created_at, d.next_attempt_at,
                   d.delivered_at,
                   ARRAY(SELECT row(a.attempt, a.started_at, a.duration_ms, a.status_code,
                                    a.error, a.next_retry_at)
                           FROM webhook_attempts a WHERE a.delivery_id = d.id
                          ORDER BY a.id) AS attempts
              FROM webhook_deliveries d WHERE {where}
             ORDER BY d.id DESC LIMIT $4 OFFSET $5""",  # noqa: S608
        webhook_id, account_id, state, limit, offset,
    )
    return int(total), rows


def describe_attempts(records: Iterable[Any]) -> list[dict[str, Any]]:
    """The attempts of one delivery, as the deliveries API shows them."""
    return [
        {"attempt": attempt, "at": iso(started), "durationMs": duration,
         "statusCode": status, "error": error, "nextRetryAt": iso(next_retry)}
        for attempt, started, duration, status, error, next_retry in records
    ]
