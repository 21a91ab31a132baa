"""SQL of a phone's status reports: a recipient's outcome, the implicit ack, the message's
end and status, its events and the webhook outbox rows, in one statement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from smsnodes_hub.auth.accounts import Executor, Principal


@dataclass(frozen=True, slots=True)
class StatusOutcome:
    found: bool
    current_attempt: int | None
    changed: bool
    accepted: bool  # the report also stood in for a lost ack


# The monotonic rule ranks pending < cancelled, expired (the hub's word) < sent < delivered,
# failed (the phone's word on the outcome). A report never moves a recipient backwards; a
# report of what really happened overrides a cancel or expiry that came too late; one about
# an older attempt changes nothing.
_STATUS = """
WITH target AS (
    SELECT m.id, m.account_id, m.state AS message_state, m.attempt AS message_attempt,
           r.position, r.state, r.attempt
      FROM messages m JOIN recipients r ON r.message_id = m.id
     WHERE m.id = $1 AND m.device_id = $2 AND r.number_mac = $3
), upd AS (
    -- A transient failure at send time ($7) waits for the next round instead of ending;
    -- one after 'sent' (a failed delivery) or after a cancel never sends again.
    UPDATE recipients r SET
        state = CASE WHEN $5 = 'failed' AND $7 AND t.state = 'pending' THEN 'retry' ELSE $5 END,
        error = $6, updated_at = now()
      FROM target t
     WHERE r.message_id = t.id AND r.position = t.position AND t.attempt = $4
       AND (CASE t.state WHEN 'pending' THEN 0 WHEN 'cancelled' THEN 1 WHEN 'expired' THEN 1
                         WHEN 'sent' THEN 2 ELSE 3 END)
         < (CASE $5::text WHEN 'sent' THEN 2 ELSE 3 END)
    RETURNING r.message_id, r.position, r.state
), nxt AS (
    -- A report stands in for a lost ack; the last recipient to leave 'pending' ends it.
    SELECT CASE
            WHEN m.state IN ('queued', 'dispatched', 'accepted') AND NOT EXISTS (
                SELECT 1 FROM recipients o
                 WHERE o.message_id = m.id AND o.state = 'pending'
                   AND o.position NOT IN (SELECT position FROM upd)) THEN 'done'
            WHEN m.state IN ('queued', 'dispatched') AND m.attempt = $4 THEN 'accepted'
            ELSE m.state END AS state,
           -- Every recipient as it stands after this report: the overall status is set
           -- here, so the status trigger has nothing left to write.
           ARRAY(SELECT coalesce(u.state, o.state) FROM recipients o
                   LEFT JOIN upd u ON u.message_id = o.message_id AND u.position = o.position
                  WHERE o.message_id = m.id) AS recipient_states
      FROM messages m WHERE m.id = $1 AND m.device_id = $2
), msg AS (
    UPDATE messages m SET
        state = nxt.state,
        status = message_status(nxt.state, nxt.recipient_states),
        accepted_at = CASE WHEN m.state IN ('queued', 'dispatched') AND m.attempt = $4
                           THEN now() ELSE m.accepted_at END,
        dispatched_to = CASE WHEN m.state IN ('queued', 'dispatched') AND m.attempt = $4
                             THEN NULL ELSE m.dispatched_to END
      FROM (SELECT DISTINCT id, message_state, message_attempt FROM target) t, nxt
     WHERE m.id = t.id
       AND ((m.state IN ('queued', 'dispatched') AND m.attempt = $4) OR EXISTS (SELECT 1 FROM upd))
    RETURNING m.id, t.message_state IN ('queued', 'dispatched') AND m.attempt = $4 AS acked
), ev AS (
    INSERT INTO message_events (message_id, position, status, error, attempt, at, reported_at)
    SELECT id, NULL, 'accepted', NULL, $4, clock_timestamp(), NULL::timestamptz
      FROM msg WHERE acked
    UNION ALL
    SELECT message_id, position, $5, $6, $4, clock_timestamp() + interval '1 microsecond',
           $8::timestamptz
      FROM upd
), hook AS (
    -- A failure that will be retried is not an outcome yet: no message.failed for it.
    SELECT emit_webhook_event(t.account_id, 'message.' || $5, $2, upd.message_id,
                              upd.position, NULL, $5, $6, $4)
      FROM upd JOIN target t ON t.position = upd.position
     WHERE upd.state <> 'retry'
)
SELECT (SELECT attempt FROM target LIMIT 1) AS attempt,
       (SELECT count(*) FROM hook) AS hooked,
       EXISTS (SELECT 1 FROM target) AS found,
       (SELECT count(*) FROM upd) AS changed,
       (SELECT count(*) FROM msg WHERE acked) AS accepted
"""


async def record_status(
    db: Executor,
    principal: Principal,
    message_id: int,
    attempt: int,
    number: str,
    status: str,
    error: str | None,
    *,
    retry: bool = False,
    reported_at: datetime | None = None,
) -> StatusOutcome:
    """Apply a phone's report. `retry`: a failure here may be retried (transient error,
    attempts left); the recipient then waits for the next round (see `advance_rounds`)."""
    row = await db.fetchrow(
        _STATUS, message_id, principal.device_id, principal.number_mac(number), attempt,
        status, error, retry, reported_at,
    )
    assert row is not None
    return StatusOutcome(row["found"], row["attempt"], row["changed"] > 0, row["accepted"] > 0)


async def message_exists(db: Executor, device_id: int, message_id: int) -> bool:
    return bool(
        await db.fetchval(
            "SELECT 1 FROM messages WHERE id = $1 AND device_id = $2", message_id, device_id
        )
    )
