"""Status reports applied set-based (messaging/reports.py): one call carries reports of
several messages, and several of one message, and each lands as if it came alone."""

from __future__ import annotations

from smsnodes_hub.appkeys import AUTH
from smsnodes_hub.messaging import reports
from smsnodes_hub.messaging.reports import StatusReport
from tests.support import NUMBER, PASSWORD, add_device, send

OTHER = "+1987654321"


async def test_reports_of_one_message_in_one_call_apply_in_order(hub, pool):
    await add_device(hub, "shop-phone-1")
    principal = await hub.app[AUTH].login(pool, "shop-phone-1", PASSWORD)
    assert principal is not None
    one = (await send(hub, text="one"))["messageId"]
    two = (await send(hub, text="two", numbers=[NUMBER, OTHER]))["messageId"]

    def report(message_id: int, number: str, status: str) -> StatusReport:
        return StatusReport.of(principal, message_id, 1, number, status, None)

    async with pool.acquire() as conn, conn.transaction():
        outcomes = await reports.record_statuses(conn, [
            report(one, NUMBER, "sent"),
            report(two, NUMBER, "sent"),
            report(one, NUMBER, "delivered"),
            report(two, OTHER, "failed"),
            report(two, NUMBER, "delivered"),
            report(one, NUMBER, "sent"),  # late and lower: changes nothing
            report(one + two + 1000, NUMBER, "sent"),  # no such message
            report(two, "+1555000111", "sent"),  # no such recipient
        ])

    assert [(o.found, o.changed) for o in outcomes] == [
        (True, True), (True, True), (True, True), (True, True), (True, True),
        (True, False), (False, False), (False, False)]
    # The first report of each message stood in for its ack; later ones did not again.
    assert [o.accepted for o in outcomes[:5]] == [True, True, False, False, False]

    rows = {r["id"]: r for r in await pool.fetch(
        "SELECT id, state, status FROM messages WHERE id = ANY($1)", [one, two])}
    assert (rows[one]["state"], rows[one]["status"]) == ("done", "delivered")
    assert (rows[two]["state"], rows[two]["status"]) == ("done", "partial")
    events = [r["status"] for r in await pool.fetch(
        "SELECT status FROM message_events WHERE message_id = $1 AND status <> 'queued' "
        "AND status <> 'dispatched' ORDER BY at, id", one)]
    assert events == ["accepted", "sent", "delivered"]
