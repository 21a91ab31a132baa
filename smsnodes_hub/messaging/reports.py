"""SQL of a phone's status reports: a recipient's outcome, the implicit ack, the message's
end and status, its events and the webhook outbox rows, in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from smsnodes_hub.auth.accounts import Executor, Principal
from smsnodes_hub.set_statements import Rows, SetStatement


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
#
# Set-based: each input row is one report, and no two rows name the same message (a
# statement sees one snapshot, so two reports of one message in it would not see each
# other; `record_statuses` runs those in rounds).
_STATUS = SetStatement("""
WITH input AS (
    SELECT * FROM {reports}
), target AS (
    SELECT i.n, m.id, m.account_id, m.device_id, m.state AS message_state,
           r.position, r.state, r.attempt
      FROM input i
      JOIN messages m ON m.id = i.id AND m.device_id = i.device_id
      JOIN recipients r ON r.message_id = m.id AND r.number_mac = i.mac
), upd AS (
    -- A transient failure at send time (retry) waits for the next round instead of
    -- ending; one after 'sent' (a failed delivery) or after a cancel never sends again.
    -- Judged on the row itself (r), not on the snapshot (t): a writer that changed it
    -- meanwhile (a cancel, the expiry) is seen once its lock is released.
    UPDATE recipients r SET
        state = CASE WHEN i.status = 'failed' AND i.retry AND r.state = 'pending'
                     THEN 'retry' ELSE i.status END,
        error = i.error, updated_at = now(),
        -- Delivered is final: the row keeps its time instead of an event row (sql/022).
        delivered_at = CASE WHEN i.status = 'delivered' THEN clock_timestamp() END,
        delivered_reported_at = CASE WHEN i.status = 'delivered' THEN i.reported_at END
      FROM target t JOIN input i ON i.n = t.n
     WHERE r.message_id = t.id AND r.position = t.position AND r.attempt = i.attempt
       AND (CASE r.state WHEN 'pending' THEN 0 WHEN 'cancelled' THEN 1 WHEN 'expired' THEN 1
                         WHEN 'sent' THEN 2 ELSE 3 END)
         < (CASE i.status WHEN 'sent' THEN 2 ELSE 3 END)
    RETURNING t.n, r.message_id, r.position, r.state, r.delivered_at
), nxt AS (
    -- A report stands in for a lost ack; the last recipient to leave 'pending' ends it.
    SELECT i.n, m.id, CASE
            WHEN m.state IN ('queued', 'dispatched', 'accepted') AND NOT EXISTS (
                SELECT 1 FROM recipients o
                 WHERE o.message_id = m.id AND o.state = 'pending'
                   AND o.position NOT IN (SELECT u.position FROM upd u
                                           WHERE u.message_id = m.id)) THEN 'done'
            WHEN m.state IN ('queued', 'dispatched') AND m.attempt = i.attempt THEN 'accepted'
            ELSE m.state END AS state,
           -- Every recipient as it stands after this report: the overall status is set
           -- here, in the same write.
           CASE WHEN m.recipient_count = 1
                THEN ARRAY[coalesce((SELECT u.state FROM upd u WHERE u.n = i.n LIMIT 1),
                                    (SELECT o.state FROM recipients o
                                      WHERE o.message_id = m.id LIMIT 1))]
                ELSE ARRAY(SELECT coalesce(u.state, o.state) FROM recipients o
                             LEFT JOIN upd u ON u.message_id = o.message_id
                                            AND u.position = o.position
                            WHERE o.message_id = m.id)
           END AS recipient_states,
           m.state IN ('queued', 'dispatched') AND m.attempt = i.attempt AS acks
      FROM input i JOIN messages m ON m.id = i.id AND m.device_id = i.device_id
     WHERE EXISTS (SELECT 1 FROM target t WHERE t.n = i.n)
), msg AS (
    UPDATE messages m SET
        state = nxt.state,
        -- One recipient (most messages): its status is the message's. recipient_status()
        -- is expanded inline; a call of message_status() per row costs more than the row.
        status = CASE WHEN cardinality(nxt.recipient_states) > 1
                      THEN message_status(nxt.state, nxt.recipient_states)
                      ELSE recipient_status(nxt.state, nxt.recipient_states[1]) END,
        accepted_at = CASE WHEN nxt.acks THEN now() ELSE m.accepted_at END,
        dispatched_to = CASE WHEN nxt.acks THEN NULL ELSE m.dispatched_to END
      FROM nxt
     WHERE m.id = nxt.id
       AND (nxt.acks OR EXISTS (SELECT 1 FROM upd u WHERE u.n = nxt.n))
    RETURNING nxt.n, m.id, m.attempt, nxt.acks
), written AS (
    -- The outcomes that have an event row: a delivery is kept on its recipient (sql/022).
    SELECT u.n, u.message_id, u.position FROM upd u WHERE u.state <> 'delivered'
), ev AS (
    -- The report's row says that it stood in for the ack (`with_ack`: the message was
    -- accepted a microsecond before, in message_timeline, sql/022); an ack without such
    -- a row has its own, before the delivery it came with.
    INSERT INTO message_events (message_id, position, status, error, attempt, at,
                                reported_at, with_ack)
    SELECT id, NULL, 'accepted', NULL, attempt,
           coalesce((SELECT min(u.delivered_at) FROM upd u WHERE u.n = msg.n)
                    - interval '1 microsecond', clock_timestamp()), NULL::timestamptz, NULL
      FROM msg WHERE acks AND NOT EXISTS (SELECT 1 FROM written w WHERE w.n = msg.n)
    UNION ALL
    SELECT w.message_id, w.position, i.status, i.error, i.attempt,
           clock_timestamp() + interval '1 microsecond', i.reported_at,
           -- One row per ack: a number listed twice changes two recipients.
           CASE WHEN EXISTS (SELECT 1 FROM msg WHERE msg.n = w.n AND msg.acks)
                 AND w.position = (SELECT min(o.position) FROM written o WHERE o.n = w.n)
                THEN true END
      FROM written w JOIN input i ON i.n = w.n
), hook AS (
    -- The webhook outbox, as emit_webhook_event() writes it but for the whole batch in one
    -- insert: one event id per outcome, a row per webhook_listeners() of it (sql/019). A
    -- failure that will be retried is not an outcome yet: no message.failed for it.
    INSERT INTO webhook_deliveries (webhook_id, account_id, event_id, event_type, device_id,
                                    message_id, position, status, error, attempt)
    SELECT w.id, e.account_id, e.event_id, e.event_type, e.device_id, e.message_id,
           e.position, e.status, e.error, e.attempt
      FROM (SELECT t.account_id, 'message.' || i.status AS event_type, t.device_id,
                   u.message_id, u.position, i.status, i.error, i.attempt,
                   gen_random_uuid() AS event_id
              FROM upd u JOIN input i ON i.n = u.n
              JOIN target t ON t.n = u.n AND t.position = u.position
             WHERE u.state <> 'retry') e
     CROSS JOIN LATERAL webhook_listeners(e.account_id, e.event_type) AS w(id)
    RETURNING 1
), hook_wake AS (
    SELECT pg_notify('smsnodes_hub', 'webhook')  -- bus.WebhookQueued, once a batch
     WHERE EXISTS (SELECT 1 FROM hook)
)
SELECT (SELECT t.attempt FROM target t WHERE t.n = i.n LIMIT 1) AS attempt,
       EXISTS (SELECT 1 FROM target t WHERE t.n = i.n) AS found,
       (SELECT count(*) FROM upd u WHERE u.n = i.n) AS changed,
       EXISTS (SELECT 1 FROM msg WHERE msg.n = i.n AND msg.acks) AS accepted,
       (SELECT count(*) FROM hook_wake) AS hooked
  FROM input i
 ORDER BY i.n
""", reports=Rows("i", ((1, "bigint", "id"), (2, "bigint", "device_id"), (3, "bytea", "mac"),
                        (4, "integer", "attempt"), (5, "text", "status"), (6, "text", "error"),
                        (7, "boolean", "retry"), (8, "timestamptz", "reported_at"))))


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A phone's report on one recipient of one attempt. `retry`: a failure here may be
    retried (transient error, attempts left); the recipient then waits for the next round
    (see `messages.advance_rounds`)."""

    device_id: int
    message_id: int
    attempt: int
    number_mac: bytes
    status: str
    error: str | None
    retry: bool = False
    reported_at: datetime | None = None

    @classmethod
    def of(cls, principal: Principal, message_id: int, attempt: int, number: str,
           status: str, error: str | None, *, retry: bool = False,
           reported_at: datetime | None = None) -> StatusReport:
        return cls(principal.phone_id, message_id, attempt, principal.number_mac(number),
                   status, error, retry, reported_at)


async def record_statuses(db: Executor, reports: Sequence[StatusReport],
                          in_rounds: list[list[int]] | None = None) -> list[StatusOutcome]:
    """Apply phones' reports, in their order: one statement per round, where a round takes
    each message's next report (a phone's `sent` and `delivered` often come together).
    `in_rounds`: `rounds(reports)`, when the caller has it already."""
    outcomes: list[StatusOutcome | None] = [None] * len(reports)
    for this_round in rounds(reports) if in_rounds is None else in_rounds:
        batch = [reports[k] for k in this_round]
        rows = await _STATUS.fetch(
            db, [r.message_id for r in batch], [r.device_id for r in batch],
            [r.number_mac for r in batch], [r.attempt for r in batch],
            [r.status for r in batch], [r.error for r in batch], [r.retry for r in batch],
            [r.reported_at for r in batch],
        )
        for k, row in zip(this_round, rows, strict=True):
            outcomes[k] = StatusOutcome(row["found"], row["attempt"], row["changed"] > 0,
                                        row["accepted"])
    return [o for o in outcomes if o is not None]


def rounds(reports: Sequence[StatusReport]) -> list[list[int]]:
    """The reports' indexes in rounds: each message's first report in the first round, its
    second in the second, and so on; within a round in message order, so that concurrent
    transactions lock rows in the same order."""
    out: list[list[int]] = []
    seen: dict[int, int] = {}  # message id -> reports of it so far
    for k, report in enumerate(reports):
        n = seen.get(report.message_id, 0)
        seen[report.message_id] = n + 1
        if n == len(out):
            out.append([])
        out[n].append(k)
    for this_round in out:
        this_round.sort(key=lambda k: reports[k].message_id)
    return out


async def record_status(db: Executor, principal: Principal, message_id: int, attempt: int,
                        number: str, status: str, error: str | None, *, retry: bool = False,
                        reported_at: datetime | None = None) -> StatusOutcome:
    """One report alone (see `record_statuses`)."""
    report = StatusReport.of(principal, message_id, attempt, number, status, error,
                             retry=retry, reported_at=reported_at)
    return (await record_statuses(db, [report]))[0]


async def message_exists(db: Executor, device_id: int, message_id: int) -> bool:
    return bool(
        await db.fetchval(
            "SELECT 1 FROM messages WHERE id = $1 AND device_id = $2", message_id, device_id
        )
    )
