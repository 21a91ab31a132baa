"""SQL of taking a message back: cancels by its owner and expiry by the clock. The phone is
told (`cancel` frames) by the hub once these commit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from smsnodes_hub import errors
from smsnodes_hub.auth.accounts import Executor


@dataclass(frozen=True, slots=True)
class Withdrawn:
    message_id: int
    device_id: int
    on_phone: bool  # dispatched or accepted: the phone must be told to drop it


_EXPIRE_DUE = """
WITH due AS (
    SELECT id, device_id, state, account_id, created_at, segments FROM messages
     WHERE expires_at <= now() AND state IN ('scheduled', 'queued', 'dispatched', 'accepted')
     ORDER BY expires_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), r AS (
    UPDATE recipients SET state = 'expired', updated_at = now()
     WHERE message_id IN (SELECT id FROM due) AND state IN ('pending', 'retry')
    RETURNING message_id, position, attempt
), upd AS (
    UPDATE messages m SET state = 'done', dispatched_to = NULL,
           withdraw_pending = due.state IN ('dispatched', 'accepted')
      FROM due WHERE m.id = due.id
    RETURNING m.id, m.account_id, m.device_id
), ev AS (
    INSERT INTO message_events (message_id, position, status, attempt)
    SELECT message_id, position, 'expired', attempt FROM r
), hook AS (
    SELECT emit_webhook_event(upd.account_id, 'message.expired', upd.device_id, r.message_id,
                              r.position, NULL, 'expired', NULL, r.attempt)
      FROM r JOIN upd ON upd.id = r.message_id
), back AS (
    -- Recipients that expire unsent give their SMS back to the account's quota.
    SELECT quota_give_back(due.account_id, due.created_at,
                           count(*) * coalesce(due.segments, 1))
      FROM r JOIN due ON due.id = r.message_id
     GROUP BY due.id, due.account_id, due.created_at, due.segments
)
SELECT id, device_id, state IN ('dispatched', 'accepted') AS on_phone,
       (SELECT count(*) FROM hook) AS hooked, (SELECT count(*) FROM back) AS given_back
  FROM due
"""


async def expire_due(db: Executor, limit: int = 1000) -> list[Withdrawn]:
    """Recipients not yet sent when their message expires end as `expired`."""
    rows = await db.fetch(_EXPIRE_DUE, limit)
    return [Withdrawn(r["id"], r["device_id"], r["on_phone"]) for r in rows]


# -- Cancel -------------------------------------------------------------------------------------

_CANCEL = """
WITH m AS (
    SELECT id, device_id, state, status, created_at, segments FROM messages
     WHERE id = $1 AND account_id = $2 FOR UPDATE
), r AS (
    UPDATE recipients SET state = 'cancelled', updated_at = now()
     WHERE message_id IN (SELECT id FROM m) AND state IN ('pending', 'retry')
    RETURNING position, attempt
), upd AS (
    UPDATE messages SET state = 'done', dispatched_to = NULL,
           withdraw_pending = (SELECT state FROM m) IN ('dispatched', 'accepted')
     WHERE id IN (SELECT id FROM m) AND EXISTS (SELECT 1 FROM r)
), ev AS (
    INSERT INTO message_events (message_id, position, status, attempt)
    SELECT $1, position, 'cancelled', attempt FROM r
), hook AS (
    SELECT emit_webhook_event($2, 'message.cancelled', m.device_id, $1, r.position, NULL,
                              'cancelled', NULL, r.attempt)
      FROM r, m
), back AS (
    -- Recipients cancelled unsent give their SMS back to the account's quota.
    SELECT quota_give_back($2, m.created_at,
                           (SELECT count(*) FROM r) * coalesce(m.segments, 1)) FROM m
)
SELECT m.device_id, m.state, m.status, (SELECT count(*) FROM r) AS cancelled,
       (SELECT count(*) FROM hook) AS hooked, (SELECT count(*) FROM back) AS given_back
  FROM m
"""


class NotFound(errors.NotFound):
    """No such message of this account."""


class NothingToCancel(errors.Conflict):
    """Every recipient was sent or has ended; `message_status` is the message's overall
    status, and the message says why in words."""

    # Why a cancel found nothing to cancel, by the message's overall status.
    REASONS: ClassVar[dict[str, str]] = {
        "cancelled": "it is already cancelled",
        "expired": "it has expired",
        "sent": "it was already sent",
        "delivered": "it was already delivered",
        "failed": "it has already failed",
        "partial": "every recipient was already delivered, failed, expired or cancelled",
    }
    ENDED: ClassVar[str] = "every recipient was already sent or has ended"

    def __init__(self, message_id: int, message_status: str) -> None:
        reason = self.REASONS.get(message_status, self.ENDED)
        super().__init__(f"Message {message_id} cannot be cancelled: {reason}")
        self.message_status = message_status


async def cancel(db: Executor, account_id: int, message_id: int) -> Withdrawn:
    """Cancel every recipient not yet sent. Raises NotFound (no such message of this
    account) or NothingToCancel (every recipient was already sent or ended)."""
    row = await db.fetchrow(_CANCEL, message_id, account_id)
    if row is None:
        raise NotFound(f"Message {message_id} not found")
    if not row["cancelled"]:
        raise NothingToCancel(message_id, row["status"])
    return Withdrawn(message_id, row["device_id"], row["state"] in ("dispatched", "accepted"))
