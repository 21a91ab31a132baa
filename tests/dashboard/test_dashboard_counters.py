"""Issue 16, item 5: the dashboard's counters tell the truth. Failed webhook attempts count
even when the delivery went through later; a retry's time is not shown as a schedule; a
message waiting for a retry says so, in the HTTP API's words."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from smsnodes_hub.appkeys import POOL
from smsnodes_hub.auth import crypto
from tests.dashboard_support import element, logged_in
from tests.support import PASSWORD, add_device, basic, send, until, ws_url
from tests.wsclient import RawPhone


def _text(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, element_id
    return match.group(1).strip()


def _cell(row: str, label: str) -> str:
    match = re.search(rf'<td[^>]*data-label="{re.escape(label)}">(.*?)</td>', row, re.S)
    assert match, (label, row)
    return match.group(1).strip()


async def test_failed_webhook_attempts_count_even_when_delivered_later(hub: TestClient) -> None:
    device_id = await add_device(hub, "shop-phone-1")
    await logged_in(hub)
    pool = hub.app[POOL]
    account = await pool.fetchval("SELECT account_id FROM devices WHERE id = $1", device_id)
    webhook = await pool.fetchval(
        """INSERT INTO webhooks (account_id, url, events, secret, last_success_at)
           VALUES ($1, 'https://fine.example/in', $2, $3, now()) RETURNING id""",
        account, ["message.expired"], crypto.seal(crypto.new_data_key(), b"s", b"test"))
    # Fifteen failed attempts, then the sixteenth went through (issue 16's report).
    delivery = await pool.fetchval(
        """INSERT INTO webhook_deliveries (webhook_id, account_id, event_id, event_type, state,
                                           attempts, created_at, delivered_at)
           VALUES ($1, $2, gen_random_uuid(), 'message.expired', 'delivered', 16,
                   now() - interval '2 hours', now()) RETURNING id""",
        webhook, account)
    await pool.execute(
        """INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms,
                                         status_code, error)
           SELECT $1, n, now() - make_interval(mins => 120 - n),
                  10, CASE WHEN n < 16 THEN 503 ELSE 200 END,
                  CASE WHEN n < 16 THEN 'HTTP 503' END
             FROM generate_series(1, 16) n""",
        delivery)

    overview = await (await hub.get("/dashboard/fragments/overview")).text()
    assert "Failed webhook attempts, 24 h" in overview
    assert _text(overview, "webhook-failed-attempts") == "15"
    assert _text(overview, "webhook-given-up") == "0"

    page = await (await hub.get("/dashboard/webhooks")).text()
    assert _text(page, "failed-attempts") == "15" and _text(page, "given-up") == "0"
    assert _cell(element(page, f"webhook-{webhook}"), "Failed attempts, 24 h") == "15"
    assert "No failed attempts" not in page and "No failed deliveries" not in page
    row = element(page, f"failure-{delivery}")  # listed among the failures, with its last one
    assert 'data-state="delivered"' in row and "HTTP 503" in _cell(row, "Last failure")
    assert "HTTP 200" in _cell(element(page, f"delivery-{delivery}"), "Last answer")


async def test_a_message_waiting_for_its_retry_says_so_and_its_retry_time_is_no_schedule(
    hub: TestClient,
) -> None:
    await add_device(hub, "shop-phone-1")
    await logged_in(hub)
    pool = hub.app[POOL]
    mid = (await send(hub, numbers=["+15550000001", "+15550000002"]))["messageId"]

    async def pages() -> tuple[str, str, dict[str, object]]:
        listing = await (await hub.get("/dashboard/messages")).text()
        detail = await (await hub.get(f"/dashboard/messages/{mid}")).text()
        api = await (await hub.get(f"/api/messages/{mid}", headers=basic())).json()
        return element(listing, f"message-{mid}"), detail, api

    # The phone holds attempt 1; recipient 1 failed for now (a transient error) and waits in
    # 'retry' while recipient 2 has no outcome yet: the round is still open.
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    [sms] = await phone.recv_sms(1)
    await phone.ack(sms)
    await phone.send({"type": "status", "id": mid, "attempt": 1, "to": "+15550000001",
                      "status": "failed", "error": "RESULT_ERROR_NO_SERVICE", "ref": "r1"})
    assert (await phone.recv_type("ok"))["ref"] == "r1"
    row, detail, api = await pages()
    assert api["status"] == "scheduled"  # the HTTP API's word for it (HTTP-API.md)
    assert 'data-status="scheduled"' in _cell(row, "Status")
    assert 'data-retry="after-round"' in _cell(row, "Status")
    assert _cell(row, "Scheduled") == "—"
    assert _cell(row, "Retry at") == "after attempt 1"
    recipient = element(detail, "recipient-1")
    assert 'data-status="scheduled"' in recipient and 'data-retry="recipient"' in recipient
    assert 'data-status="retry"' not in detail  # not a status the API knows

    # Recipient 2 is sent: the round is over, the hub's clock plans attempt 2 after the
    # backoff (30 s by default) and writes that time into scheduled_at.
    await phone.send({"type": "status", "id": mid, "attempt": 1, "to": "+15550000002",
                      "status": "sent", "ref": "r2"})
    assert (await phone.recv_type("ok"))["ref"] == "r2"
    await until(lambda: pool.fetchval("SELECT attempt = 2 FROM messages WHERE id = $1", mid))
    retry_at = await pool.fetchval("SELECT scheduled_at FROM messages WHERE id = $1", mid)
    row, detail, api = await pages()
    assert api["status"] == "scheduled" and api["scheduledAt"] is not None
    assert 'data-status="scheduled"' in _cell(row, "Status")
    assert 'data-retry="due"' in _cell(row, "Status") and "attempt 2" in _cell(row, "Status")
    assert _cell(row, "Scheduled") == "—"  # nobody scheduled this message
    when = retry_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert _cell(row, "Retry at") == when
    assert re.search(r'id="message-scheduled">—<', detail)
    assert re.search(rf'id="message-retry-at">{when}<', detail)
    await phone.close()


async def test_a_scheduled_message_keeps_its_schedule_apart_from_its_retry(
    hub: TestClient,
) -> None:
    await add_device(hub, "shop-phone-1")
    await logged_in(hub)
    pool = hub.app[POOL]
    mid = (await send(hub))["messageId"]
    # Sent as scheduled, released when due, then retried: the row's scheduled_at now holds
    # the retry's time; the moment attempt 1 was queued stands for the sender's schedule.
    await pool.execute(
        """UPDATE messages SET created_at = created_at - interval '2 hours'
            WHERE id = $1""", mid)
    await pool.execute(
        """UPDATE message_events SET at = at - interval '2 hours'
            WHERE message_id = $1""", mid)
    await pool.execute(
        """INSERT INTO message_events (message_id, status, attempt, at)
           VALUES ($1, 'scheduled', 1, now() - interval '3 hours')""", mid)
    await pool.execute(
        """UPDATE messages SET attempt = 2, state = 'scheduled',
                  scheduled_at = now() + interval '10 minutes' WHERE id = $1""", mid)
    released, retry_at = await pool.fetchrow(
        """SELECT (SELECT min(at) FROM message_timeline WHERE message_id = $1
                    AND status = 'queued'), scheduled_at FROM messages WHERE id = $1""", mid)
    row = element(await (await hub.get("/dashboard/messages")).text(), f"message-{mid}")
    assert _cell(row, "Scheduled") == released.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert _cell(row, "Retry at") == retry_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert 'data-retry="due"' in _cell(row, "Status")
