"""The dashboard's SQL about accounts with several phones: each account's phones, pool and
quota use (metadata only, like every page of the dashboard)."""

from __future__ import annotations

import asyncpg

from smsnodes_hub.auth.accounts import Executor
from smsnodes_hub.dashboard.queries import DEVICES

_ACCOUNTS = """
SELECT a.id, a.name, a.created_at,
       (SELECT count(*) FROM devices d WHERE d.account_id = a.id) AS phones,
       (SELECT count(*) FROM devices d JOIN live_sessions($1) s ON s.device_id = d.id
         WHERE d.account_id = a.id) AS online,
       (SELECT count(*) FROM messages m
         WHERE m.account_id = a.id AND m.device_id IS NULL AND m.state = 'queued') AS pool,
       q.daily, q.monthly,
       CASE WHEN q.day = (now() AT TIME ZONE 'UTC')::date THEN q.day_used ELSE 0 END
           AS day_used,
       CASE WHEN q.month = date_trunc('month', now() AT TIME ZONE 'UTC')::date
            THEN q.month_used ELSE 0 END AS month_used
  FROM accounts a LEFT JOIN quotas q ON q.account_id = a.id
"""


async def list_accounts(db: Executor, stale_seconds: float, limit: int) -> list[asyncpg.Record]:
    """Every account, by name, with its phones (and how many are online), its pool's depth
    and its quota use."""
    return await db.fetch(f"{_ACCOUNTS} ORDER BY a.name LIMIT $2",
                          stale_seconds, limit)


async def get_account(db: Executor, stale_seconds: float,
                      account_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(f"{_ACCOUNTS} WHERE a.id = $2",
                             stale_seconds, account_id)


async def account_phones(db: Executor, stale_seconds: float,
                         account_id: int) -> list[asyncpg.Record]:
    """The account's phones as the phones page shows them: online first, then by name."""
    return await db.fetch(
        f"{DEVICES} WHERE d.account_id = $2 "
        "ORDER BY live.device_id IS NULL, d.username",
        stale_seconds, account_id,
    )
