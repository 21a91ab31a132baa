"""Device records beyond credentials: presence, telemetry, pacing settings, and the load
of an account's phones."""

from __future__ import annotations

import asyncpg

from smsnodes_hub.auth.accounts import Executor

MAX_PACE = 10_000


async def record_telemetry(
    db: Executor, device_id: int, battery: int | None, charging: bool | None,
    signal: int | None,
) -> None:
    await db.execute(
        """UPDATE devices SET battery = coalesce($2, battery), charging = coalesce($3, charging),
                  signal = coalesce($4, signal), telemetry_at = now(), last_seen_at = now()
            WHERE id = $1""",
        device_id, battery, charging, signal,
    )


async def set_pace(db: Executor, device_id: int, per_minute: int | None) -> bool:
    """Store the device's pacing and tell every hub process (the one holding its socket
    applies it at once)."""
    if per_minute is not None and not 1 <= per_minute <= MAX_PACE:
        raise ValueError(f"pacing must be from 1 to {MAX_PACE} SMS per minute, or off")
    changed = await db.fetchval(
        """WITH upd AS (UPDATE devices SET pace_per_minute = $2 WHERE id = $1 RETURNING id)
           SELECT id FROM upd, pg_notify('smsnodes_hub', 'pace:' || upd.id || ':' || $3)""",
        device_id, per_minute, str(per_minute or 0),
    )
    return changed is not None


_COLUMNS = """d.id, d.username, d.created_at,
              device_seen_at(d.id, d.last_seen_at) AS last_seen_at, d.model, d.app_version,
              d.sims, d.battery, d.charging, d.signal, d.telemetry_at, d.pace_per_minute,
              s.connected_at AS connected_since"""


async def describe(db: Executor, device_id: int, stale_seconds: float) -> asyncpg.Record | None:
    return await db.fetchrow(
        f"""SELECT {_COLUMNS}
              FROM devices d
              LEFT JOIN live_sessions($2) s ON s.device_id = d.id
             WHERE d.id = $1""",  # noqa: S608 - fixed column names
        device_id, stale_seconds,
    )


async def describe_account(db: Executor, account_id: int, stale_seconds: float,
                           device_id: int | None = None) -> list[asyncpg.Record]:
    """The account's phones (or just `device_id` of them), oldest first, each with what
    `describe` says and its load: `queued` (waiting for it), `in_flight` (pushed, not acked)
    and `sent_today` (recipients it sent since midnight UTC)."""
    return await db.fetch(
        f"""SELECT {_COLUMNS},
                   (SELECT count(*) FROM messages q
                     WHERE q.device_id = d.id AND q.state = 'queued') AS queued,
                   (SELECT count(*) FROM messages q
                     WHERE q.device_id = d.id AND q.state = 'dispatched') AS in_flight,
                   (SELECT count(*) FROM message_events e JOIN messages m ON m.id = e.message_id
                     WHERE e.status = 'sent' AND m.device_id = d.id
                       AND e.at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                   ) AS sent_today
              FROM devices d
              LEFT JOIN live_sessions($2) s ON s.device_id = d.id
             WHERE d.account_id = $1 AND ($3::bigint IS NULL OR d.id = $3)
             ORDER BY d.id""",  # noqa: S608 - fixed column names
        account_id, stale_seconds, device_id,
    )
