"""Status reports applied set-based (messaging/reports.py): one call carries reports of
several messages, and several of one message, and each lands as if it came alone."""

from __future__ import annotations

from smsnodes_hub.appkeys import AUTH
from smsnodes_hub.messaging import reports
from smsnodes_hub.messaging.reports import StatusReport
from tests.support import NUMBER, PASSWORD, add_device, basic, send

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
        "SELECT status FROM message_timeline WHERE message_id = $1 AND status <> 'queued' "
        "AND status <> 'dispatched' ORDER BY at, id", one)]
    assert events == ["accepted", "sent", "delivered"]


async def test_a_batch_of_reports_queues_one_event_per_outcome_for_each_webhook_listening(
        make_hub, pool):
    hub = await make_hub(SMSNODES_WEBHOOKS_ALLOW_PRIVATE="true",
                         SMSNODES_WEBHOOKS_ALLOW_HTTP="true")
    await add_device(hub, "shop-phone-1")
    principal = await hub.app[AUTH].login(pool, "shop-phone-1", PASSWORD)
    assert principal is not None
    # Nothing listens on port 9 here: the deliveries fail at once and stay queued.
    hooks = {}
    for name, events in (("both", ["message.sent", "message.failed"]),
                         ("sent", ["message.sent"]), ("other", ["message.delivered"])):
        resp = await hub.post("/api/webhooks", headers=basic(), json={
            "url": f"http://127.0.0.1:9/{name}", "events": events})
        assert resp.status == 201, await resp.text()
        hooks[(await resp.json())["id"]] = name
    one = (await send(hub, text="one"))["messageId"]
    two = (await send(hub, text="two", numbers=[NUMBER, OTHER]))["messageId"]

    async with pool.acquire() as conn:
        await reports.record_statuses(conn, [
            StatusReport.of(principal, one, 1, NUMBER, "sent", None),
            StatusReport.of(principal, two, 1, NUMBER, "sent", None),
            # Retried later: not an outcome yet, so no message.failed.
            StatusReport.of(principal, two, 1, OTHER, "failed", "radio off", retry=True),
        ])

    rows = await pool.fetch(
        "SELECT webhook_id, event_id, event_type, message_id, position, status, attempt "
        "FROM webhook_deliveries WHERE event_type LIKE 'message.%' ORDER BY message_id, "
        "webhook_id")
    got = [(hooks[r["webhook_id"]], r["event_type"], r["message_id"], r["position"],
            r["status"], r["attempt"]) for r in rows]
    assert got == [("both", "message.sent", one, 1, "sent", 1),
                   ("sent", "message.sent", one, 1, "sent", 1),
                   ("both", "message.sent", two, 1, "sent", 1),
                   ("sent", "message.sent", two, 1, "sent", 1)]
    # One event id per outcome, the same for every webhook that gets it.
    assert rows[0]["event_id"] == rows[1]["event_id"] != rows[2]["event_id"]
    assert rows[2]["event_id"] == rows[3]["event_id"]
