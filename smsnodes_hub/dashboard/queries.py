"""The SQL of the dashboard's read-only views of devices, queues, messages and webhooks
(operators and their sessions: operator_queries.py). Parameterised throughout; nothing here
reads a ciphertext column (the dashboard holds no keys, so it could not open one anyway)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from smsnodes_hub.auth.accounts import Executor
from smsnodes_hub.messaging.messages import STATUSES

# A status before which the message can still be cancelled (a recipient is still waiting).
CANCELLABLE = ("scheduled", "queued", "dispatched", "accepted")

# A message's overall status is the stored `messages.status` (sql/008, kept by triggers):
# never recomputed here. The search's status filter writes the status as a literal, picked
# from this table by the operator's choice (nothing they send reaches the SQL text): the
# planner then knows how rare that very status is on every run, including the generic plans
# prepared statements switch to, so a rare status is found through messages_account_status
# (PostgreSQL 18 skips through its leading account_id) and a common one by created_at.
_STATUS_LITERAL = {s: f"'{s}'" for s in STATUSES}

# When a message is due, apart from when its retry is: a retry round (sql/007) writes the
# retry's time into messages.scheduled_at, so that column is the sender's scheduledAt only
# on attempt 1. On a later attempt the sender's time is gone from the row; the moment the
# first attempt was queued after its `scheduled` step stands for it (the hub releases due
# messages within 250 ms). `retry`: why a message whose status is `scheduled` (the API's
# word for "waiting for scheduledAt, or for its retry") waits: 'due', the next attempt is
# planned for retry_at; 'after-round', a recipient failed for now and goes again once every
# other recipient of this attempt has an outcome.
_WHEN = """
CASE WHEN m.attempt = 1 THEN m.scheduled_at
     ELSE (SELECT min(q.at) FROM message_timeline q
            WHERE q.message_id = m.id AND q.attempt = 1 AND q.status = 'queued'
              AND EXISTS (SELECT 1 FROM message_timeline s WHERE s.message_id = m.id
                             AND s.attempt = 1 AND s.status = 'scheduled'))
END AS scheduled_for,
CASE WHEN m.attempt > 1 THEN m.scheduled_at END AS retry_at,
CASE WHEN m.status <> 'scheduled' THEN NULL
     WHEN EXISTS (SELECT 1 FROM recipients x WHERE x.message_id = m.id AND x.state = 'retry')
     THEN 'after-round'
     WHEN m.attempt > 1 THEN 'due'
END AS retry"""

# Devices with a socket in a live hub process ($1: seconds after which a process is dead).
_LIVE = "(SELECT device_id, connected_at FROM live_sessions($1))"

_TODAY = "date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
# Messages not yet done: one arm per state, each read through that state's own partial
# index. There is no index on the state alone: planned from statistics that no longer
# match (ten thousand messages queued since the last ANALYZE), the hot path's claims, acks
# and logins took one for their lookups and read every open message per item
# (sql/020_open_messages.sql).
_OPEN = """(
    SELECT state, priority, device_id FROM messages WHERE state = 'scheduled'
    UNION ALL SELECT state, priority, device_id FROM messages WHERE state = 'queued'
    UNION ALL SELECT state, priority, device_id FROM messages WHERE state = 'dispatched'
    UNION ALL SELECT state, priority, device_id FROM messages WHERE state = 'accepted')"""


# -- Overview -------------------------------------------------------------------------------


async def device_counts(db: Executor, stale_seconds: float) -> asyncpg.Record:
    row = await db.fetchrow(
        f"""SELECT count(*) AS total, count(live.device_id) AS online
              FROM devices d LEFT JOIN {_LIVE} live ON live.device_id = d.id""",  # noqa: S608
        stale_seconds,
    )
    assert row is not None
    return row


async def status_counts(db: Executor) -> list[asyncpg.Record]:
    """Messages created in the last day by overall status, with the last hour's share."""
    return await db.fetch(
        """SELECT m.status,
                  count(*) FILTER (WHERE m.created_at > now() - interval '1 hour') AS hour,
                  count(*) AS day
             FROM messages m
            WHERE m.created_at > now() - interval '1 day'
            GROUP BY 1"""
    )


async def open_counts(db: Executor) -> list[asyncpg.Record]:
    """Messages not yet done, by state and priority (the queue and what is in flight)."""
    return await db.fetch(
        f"SELECT state, priority, count(*) AS n FROM {_OPEN} o GROUP BY state, priority"  # noqa: S608
    )


async def throughput(db: Executor) -> list[asyncpg.Record]:
    """Per minute over the last hour: recipients reported sent, and failed attempts."""
    return await db.fetch(
        """WITH e AS (
               SELECT date_trunc('minute', at) AS minute,
                      count(*) FILTER (WHERE status = 'sent') AS sent,
                      count(*) FILTER (WHERE status = 'failed') AS failed
                 FROM message_events
                WHERE status IN ('sent', 'failed')
                  AND at >= date_trunc('minute', now()) - interval '59 minutes'
                GROUP BY 1
           )
           SELECT g.minute, coalesce(e.sent, 0) AS sent, coalesce(e.failed, 0) AS failed
             FROM generate_series(date_trunc('minute', now()) - interval '59 minutes',
                                  date_trunc('minute', now()), interval '1 minute') AS g(minute)
             LEFT JOIN e ON e.minute = g.minute
            ORDER BY g.minute"""
    )


async def webhook_summary(db: Executor) -> asyncpg.Record:
    row = await db.fetchrow(
        """SELECT (SELECT count(*) FROM webhooks) AS webhooks,
                  (SELECT count(*) FROM webhooks WHERE NOT active) AS disabled,
                  (SELECT count(*) FROM webhooks
                    WHERE active AND failing_since IS NOT NULL) AS failing,
                  count(*) FILTER (WHERE state = 'failed') AS failed_day,
                  count(*) FILTER (WHERE state = 'pending' AND attempts > 0) AS retrying_day,
                  count(*) FILTER (WHERE state = 'pending') AS pending_day,
                  count(*) FILTER (WHERE state = 'delivered') AS delivered_day,
                  -- Every failed attempt, those of deliveries that went through later too.
                  (SELECT count(*) FROM webhook_attempts
                    WHERE error IS NOT NULL AND started_at > now() - interval '1 day')
                    AS failed_attempts_day
             FROM webhook_deliveries WHERE created_at > now() - interval '1 day'"""
    )
    assert row is not None
    return row


# -- Devices --------------------------------------------------------------------------------

# Counts come from two grouped passes (open messages by state; today's sent events) rather
# than one subquery per device and state: a long device list costs two scans, not hundreds.
DEVICES = f"""
SELECT d.id, d.username, d.created_at, device_seen_at(d.id, d.last_seen_at) AS last_seen_at,
       d.model, d.app_version, d.sims,
       d.account_id, (SELECT a.name FROM accounts a WHERE a.id = d.account_id) AS account,
       d.battery, d.charging, d.signal, d.telemetry_at, d.pace_per_minute,
       live.connected_at AS connected_since,
       coalesce(q.queued, 0) AS queued, coalesce(q.in_flight, 0) AS in_flight,
       coalesce(q.scheduled, 0) AS scheduled, coalesce(q.accepted, 0) AS accepted,
       coalesce(t.sent, 0) AS sent_today
  FROM devices d
  LEFT JOIN {_LIVE} live ON live.device_id = d.id
  LEFT JOIN (SELECT device_id,
                    count(*) FILTER (WHERE state = 'queued') AS queued,
                    count(*) FILTER (WHERE state = 'dispatched') AS in_flight,
                    count(*) FILTER (WHERE state = 'scheduled') AS scheduled,
                    count(*) FILTER (WHERE state = 'accepted') AS accepted
               FROM {_OPEN} o
              GROUP BY device_id) q ON q.device_id = d.id
  LEFT JOIN (SELECT m.device_id, count(*) AS sent
               FROM message_events e JOIN messages m ON m.id = e.message_id
              WHERE e.status = 'sent' AND e.at >= {_TODAY}
              GROUP BY m.device_id) t ON t.device_id = d.id
"""  # noqa: S608 - constants only; values go as parameters


async def list_devices(db: Executor, stale_seconds: float, limit: int) -> list[asyncpg.Record]:
    """Online devices first, then by name."""
    return await db.fetch(
        f"{DEVICES} ORDER BY live.device_id IS NULL, d.username LIMIT $2",
        stale_seconds, limit,
    )


async def get_device(db: Executor, stale_seconds: float, device_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(f"{DEVICES} WHERE d.id = $2", stale_seconds, device_id)


async def device_names(db: Executor) -> list[asyncpg.Record]:
    return await db.fetch("SELECT id, username FROM devices ORDER BY username")


async def recent_messages(db: Executor, device_id: int, limit: int) -> list[asyncpg.Record]:
    """The device's latest messages with their timelines (metadata only). Found through the
    account index: messages have no index by device (today a device is its account)."""
    return await db.fetch(
        f"""SELECT m.id, m.priority, m.attempt, m.recipient_count, m.created_at,
                   m.scheduled_at, m.expires_at, m.status, {_WHEN},
                   ARRAY(SELECT row(e.status, e.position, e.at, e.error)
                           FROM message_timeline e WHERE e.message_id = m.id
                          ORDER BY e.at, e.id) AS events
              FROM messages m
             WHERE m.account_id = (SELECT account_id FROM devices WHERE id = $1)
               AND m.device_id = $1
             ORDER BY m.created_at DESC, m.id DESC LIMIT $2""",  # noqa: S608 - constants only
        device_id, limit,
    )


# -- Messages -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageSearch:
    device_id: int | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def search_statement(
    search: MessageSearch, limit: int, offset: int
) -> tuple[str, list[object]]:
    """The message search's SQL and arguments. Only the filters given are written into it,
    so each shape gets a plan of its own instead of one generic plan with `$n IS NULL OR`
    for all of them; the page's bounds are literals too (the planner weighs an index by
    how many rows the LIMIT wants)."""
    args: list[object] = []

    def param(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    where = []
    if search.device_id is not None:
        device = param(search.device_id)
        # The account too: it leads the messages indexes (today a device is its account).
        where += [f"m.device_id = {device}",
                  f"m.account_id = (SELECT account_id FROM devices WHERE id = {device})"]  # noqa: S608
    if search.status is not None:
        where.append(f"m.status = {_STATUS_LITERAL[search.status]}")
    if search.since is not None:
        where.append(f"m.created_at >= {param(search.since)}")
    if search.until is not None:
        where.append(f"m.created_at < {param(search.until)}")
    sql = f"""SELECT m.id, m.device_id, d.username, m.priority, m.state, m.attempt,
                     m.recipient_count, m.created_at, m.scheduled_at, m.expires_at, m.status,
                     {_WHEN}
                FROM messages m JOIN devices d ON d.id = m.device_id
               WHERE {" AND ".join(where) or "true"}
               ORDER BY m.created_at DESC, m.id DESC
               LIMIT {int(limit)} OFFSET {int(offset)}"""  # noqa: S608 - constants, ints
    return sql, args


async def search_messages(
    db: Executor, search: MessageSearch, limit: int, offset: int
) -> list[asyncpg.Record]:
    """Newest first; ask for one more than a page to know whether another page follows."""
    sql, args = search_statement(search, limit, offset)
    return await db.fetch(sql, *args)


async def get_message(
    db: Executor, message_id: int
) -> tuple[asyncpg.Record, list[asyncpg.Record]] | None:
    """A message's metadata, its recipients (without numbers) and its events in time order."""
    row = await db.fetchrow(
        f"""SELECT m.id, m.account_id, m.device_id, d.username, m.priority, m.state,
                   m.attempt, m.recipient_count, m.created_at, m.scheduled_at, m.expires_at,
                   m.accepted_at, m.status, {_WHEN},
                   ARRAY(SELECT row(r.position, r.state, r.error, r.attempt, r.updated_at)
                           FROM recipients r WHERE r.message_id = m.id
                          ORDER BY r.position) AS recipients
              FROM messages m JOIN devices d ON d.id = m.device_id
             WHERE m.id = $1""",  # noqa: S608 - constants only
        message_id,
    )
    if row is None:
        return None
    events = await db.fetch(
        """SELECT position, status, error, attempt, at FROM message_timeline
            WHERE message_id = $1 ORDER BY at, id""",
        message_id,
    )
    return row, events


async def message_account(db: Executor, message_id: int) -> int | None:
    return await db.fetchval("SELECT account_id FROM messages WHERE id = $1", message_id)


# -- Webhooks -------------------------------------------------------------------------------


async def list_webhooks(db: Executor) -> list[asyncpg.Record]:
    return await db.fetch(
        """SELECT w.id, w.url, w.events, w.active, w.disabled_reason, w.created_at,
                  w.last_success_at, w.failing_since,
                  (SELECT string_agg(d.username, ', ' ORDER BY d.username) FROM devices d
                    WHERE d.account_id = w.account_id) AS owner,
                  (SELECT count(*) FROM webhook_deliveries x
                    WHERE x.webhook_id = w.id AND x.state = 'pending') AS pending,
                  (SELECT count(*) FROM webhook_deliveries x
                    WHERE x.webhook_id = w.id AND x.state = 'failed'
                      AND x.created_at > now() - interval '1 day') AS failed_day,
                  (SELECT count(*) FROM webhook_deliveries x JOIN webhook_attempts a
                       ON a.delivery_id = x.id
                    WHERE x.webhook_id = w.id AND a.error IS NOT NULL
                      AND a.started_at > now() - interval '1 day') AS failed_attempts_day
             FROM webhooks w ORDER BY w.active, w.failing_since NULLS LAST, w.id"""
    )


async def recent_deliveries(
    db: Executor, limit: int, *, failures_only: bool
) -> list[asyncpg.Record]:
    """The latest deliveries with their last attempt. `failures_only`: the deliveries with a
    failed attempt (given up, being retried, or delivered after failing), each with its
    last failed attempt."""
    return await db.fetch(
        """SELECT d.id, d.webhook_id, d.event_type, d.state, d.attempts, d.created_at,
                  d.next_attempt_at, d.delivered_at,
                  a.status_code, a.error, a.started_at AS attempted_at, a.duration_ms
             FROM webhook_deliveries d
             LEFT JOIN LATERAL (
                 SELECT status_code, error, started_at, duration_ms FROM webhook_attempts
                  WHERE delivery_id = d.id AND (NOT $2 OR error IS NOT NULL)
                  ORDER BY id DESC LIMIT 1) a ON true
            WHERE NOT $2 OR a.error IS NOT NULL
            ORDER BY d.id DESC LIMIT $1""",
        limit, failures_only,
    )


# -- Metrics --------------------------------------------------------------------------------


async def metrics_snapshot(db: Executor, stale_seconds: float) -> asyncpg.Record:
    """The database-backed values of /metrics in one round trip."""
    row = await db.fetchrow(
        f"""SELECT
              (SELECT count(*) FROM {_LIVE} live) AS connected,
              (SELECT count(*) FROM devices) AS devices,
              (SELECT count(*) FROM hub_processes
                WHERE heartbeat_at > now() - make_interval(secs => $1)) AS processes,
              ARRAY(SELECT row(state, priority, count(*)) FROM {_OPEN} o
                     GROUP BY state, priority) AS open,
              ARRAY(SELECT row(s.status, count(*)) FROM (
                      SELECT m.status FROM messages m
                       WHERE m.created_at > now() - interval '1 day') s
                     GROUP BY s.status) AS day,
              ARRAY(SELECT row(state, count(*)) FROM webhook_deliveries
                     WHERE created_at > now() - interval '1 day' GROUP BY state) AS hooks,
              (SELECT count(*) FROM webhook_deliveries WHERE state = 'pending') AS hooks_pending,
              (SELECT count(*) FROM webhooks WHERE NOT active) AS hooks_disabled""",  # noqa: S608
        stale_seconds,
    )
    assert row is not None
    return row
