"""Quotas (ACCOUNTS.md "Quotas"): at most N SMS a day and M a month per account, an SMS being
one recipient times the message's segments. The count is kept in the send's own statement
(storing.py) and given back when a recipient ends cancelled or expired unsent (sql/017
`quota_give_back`); this module sets the limits and reads them back."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from smsnodes_hub.auth.accounts import Executor
from smsnodes_hub.errors import QuotaExceeded
from smsnodes_hub.timefmt import iso

MAX_QUOTA = 100_000_000


@dataclass(frozen=True, slots=True)
class Period:
    limit: int
    used: int
    resets_at: datetime

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True, slots=True)
class Quota:
    daily: Period | None
    monthly: Period | None


def day_reset(now: datetime) -> datetime:
    """The next midnight UTC."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=1)


def month_reset(now: datetime) -> datetime:
    """Midnight UTC of the first day of the next month."""
    now = now.astimezone(UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def exceeded(period: str, now: datetime | None = None) -> QuotaExceeded:
    """The 429 of a send over the `period` ("day" or "month") quota, with `Retry-After`
    the seconds until that period resets."""
    now = now or datetime.now(UTC)
    resets = day_reset(now) if period == "day" else month_reset(now)
    return QuotaExceeded(max(1, math.ceil((resets - now).total_seconds())))


_CURRENT = """
SELECT daily, monthly,
       CASE WHEN day = (now() AT TIME ZONE 'UTC')::date THEN day_used ELSE 0 END AS day_used,
       CASE WHEN month = date_trunc('month', now() AT TIME ZONE 'UTC')::date
            THEN month_used ELSE 0 END AS month_used,
       now() AS now
  FROM quotas WHERE account_id = $1
"""


async def current(db: Executor, account_id: int) -> Quota:
    """The account's limits and what is used of them now (None: no limit)."""
    row = await db.fetchrow(_CURRENT, account_id)
    if row is None:
        return Quota(None, None)
    now = row["now"]
    return Quota(
        Period(row["daily"], row["day_used"], day_reset(now)) if row["daily"] else None,
        Period(row["monthly"], row["month_used"], month_reset(now))
        if row["monthly"] else None,
    )


# A quota set where there was none starts from what the account has already sent in this
# day and month (recipients not cancelled or expired unsent, times their segments; messages
# from before segments were stored count one each), so setting it late does not reset it.
_SET = """
WITH used AS (
    SELECT coalesce(sum(n) FILTER (WHERE created_at >= date_trunc('day', now() AT TIME ZONE 'UTC')
                                                    AT TIME ZONE 'UTC'), 0) AS day_used,
           coalesce(sum(n), 0) AS month_used
      FROM (SELECT m.created_at, coalesce(m.segments, 1) * (
                       SELECT count(*) FROM recipients r
                        WHERE r.message_id = m.id AND r.state NOT IN ('cancelled', 'expired')
                   ) AS n
              FROM messages m
             WHERE m.account_id = $1
               AND m.created_at >= date_trunc('month', now() AT TIME ZONE 'UTC')
                                   AT TIME ZONE 'UTC') x
)
INSERT INTO quotas (account_id, daily, monthly, day, day_used, month, month_used)
SELECT $1, $2, $3, (now() AT TIME ZONE 'UTC')::date, used.day_used,
       date_trunc('month', now() AT TIME ZONE 'UTC')::date, used.month_used
  FROM used
ON CONFLICT (account_id) DO UPDATE SET daily = EXCLUDED.daily, monthly = EXCLUDED.monthly
"""


async def set_limits(db: Executor, account_id: int, daily: int | None,
                     monthly: int | None) -> None:
    """Set both limits (None: no limit of that period); with neither, the account has no
    quota any more and its sends are not counted."""
    for value in (daily, monthly):
        if value is not None and not 1 <= value <= MAX_QUOTA:
            raise ValueError(f"a quota must be a whole number from 1 to {MAX_QUOTA}, or off")
    if daily is None and monthly is None:
        await db.execute("DELETE FROM quotas WHERE account_id = $1", account_id)
        return
    await db.execute(_SET, account_id, daily, monthly)


def render(quota: Quota) -> dict[str, object]:
    """GET /api/quota's body."""

    def period(p: Period | None) -> dict[str, object] | None:
        if p is None:
            return None
        return {"limit": p.limit, "used": p.used, "remaining": p.remaining,
                "resetsAt": iso(p.resets_at)}

    return {"daily": period(quota.daily), "monthly": period(quota.monthly)}
