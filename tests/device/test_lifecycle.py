"""Time and repetition: scheduled messages, expiry (also across a restart), retries of
transient failures, and Idempotency-Key, through the real hub and real phones."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from smsnodes_hub.app import create_app
from smsnodes_hub.appkeys import POOL
from tests.support import NUMBER, PASSWORD, add_device, basic, get, test_settings, until, ws_url
from tests.wsclient import RawPhone


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def post(client: Any, headers: dict[str, str] | None = None, **fields: Any) -> Any:
    body = {"deviceUsername": "shop-phone-1", "password": PASSWORD,
            "phoneNumbers": [NUMBER], "message": "hello", **fields}
    resp = await client.post("/api/send-sms", json=body, headers=headers or {})
    return resp.status, await resp.json()


async def test_scheduled_message_is_pushed_after_its_time_and_not_before(hub):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    status, body = await post(hub, scheduledAt=at(1.2), message="later")
    assert status == 200 and body["message"] == "SMS scheduled successfully"
    assert body["sentImmediately"] is False and body["deviceOnline"] is True
    assert (await get(hub, f"/api/messages/{body['messageId']}"))["status"] == "scheduled"
    sent_at = datetime.now(UTC)
    await phone.nothing_for(0.9)  # not before its time
    [frame] = await phone.recv_sms(1, timeout=3)
    arrived = datetime.now(UTC)
    assert frame["message"] == "later"
    assert timedelta(seconds=1.0) <= arrived - sent_at <= timedelta(seconds=2.5)
    detail = await get(hub, f"/api/messages/{body['messageId']}")
    assert detail["scheduledAt"] is not None
    assert [e["status"] for e in detail["events"]] == ["scheduled", "queued", "dispatched"]
    # A time already past means now.
    status, body = await post(hub, scheduledAt=at(-60), message="past")
    assert body["message"] == "SMS queued successfully" and body["sentImmediately"] is True
    await phone.close()


async def test_expired_message_is_never_pushed_and_in_flight_one_is_cancelled(hub):
    await add_device(hub, "shop-phone-1")
    status, offline = await post(hub, ttl=1, message="too late")
    assert status == 200
    await asyncio.sleep(1.5)
    detail = await get(hub, f"/api/messages/{offline['messageId']}")
    assert detail["status"] == "expired" and detail["recipients"][0]["status"] == "expired"
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    await phone.nothing_for(0.5)  # never pushed

    status, flying = await post(hub, expiresAt=at(1.0), message="in flight")
    [frame] = await phone.recv_sms(1)
    assert frame["expiresAt"] is not None
    assert await phone.recv_type("cancel", timeout=3) == {"type": "cancel", "id": frame["id"]}
    detail = await get(hub, f"/api/messages/{flying['messageId']}")
    assert detail["status"] == "expired"
    await phone.close()


async def test_expiry_and_schedules_catch_up_after_the_hub_was_down(database_url,
                                                                      aiohttp_client):
    settings = test_settings(database_url)
    first = await aiohttp_client(create_app(settings, database_url, migrate=False))
    await add_device(first, "shop-phone-1")
    _, expiring = await post(first, ttl=1, message="expires while down")
    _, due = await post(first, scheduledAt=at(1), message="due while down")
    await first.close()
    await asyncio.sleep(1.5)
    second = await aiohttp_client(create_app(settings, database_url, migrate=False))
    phone = await RawPhone.login(ws_url(second), "shop-phone-1", PASSWORD)
    [frame] = await phone.recv_sms(1, timeout=3)
    assert frame["id"] == due["messageId"]
    await phone.nothing_for(0.3)
    detail = await get(second, f"/api/messages/{expiring['messageId']}")
    assert detail["status"] == "expired"
    await phone.close()


async def test_scheduled_message_moves_once_with_two_processes(make_hub, pool):
    hub_a = await make_hub()
    hub_b = await make_hub()
    await add_device(hub_a, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub_b), "shop-phone-1", PASSWORD)
    _, body = await post(hub_a, scheduledAt=at(0.6))
    await asyncio.sleep(1.5)
    queued = await pool.fetchval(
        "SELECT count(*) FROM message_timeline WHERE message_id = $1 AND status = 'queued'",
        body["messageId"])
    assert queued == 1  # both clocks ran over the same row
    [frame] = await phone.recv_sms(1)
    assert frame["id"] == body["messageId"]
    await phone.nothing_for(1.0)  # exactly one frame
    await phone.close()


async def test_transient_failure_is_retried_and_succeeds_on_the_second_attempt(make_hub):
    hub = await make_hub(SMSNODES_DELIVERY_RETRY_BACKOFF="0.2")
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    _, body = await post(hub, phoneNumbers=[NUMBER, "+0987654321"])
    [first] = await phone.recv_sms(1)
    await phone.ack(first)
    await phone.send({"type": "status", "ref": "a", "id": first["id"], "attempt": 1,
                      "to": "+0987654321", "status": "sent"})
    await phone.send({"type": "status", "ref": "b", "id": first["id"], "attempt": 1,
                      "to": NUMBER, "status": "failed", "error": "RESULT_ERROR_NO_SERVICE"})
    [retry] = await phone.recv_sms(1, timeout=3)
    assert retry["id"] == first["id"] and retry["attempt"] == 2
    assert retry["to"] == [NUMBER]  # only the recipient that failed
    await phone.ack(retry)
    await phone.send({"type": "status", "ref": "c", "id": retry["id"], "attempt": 2,
                      "to": NUMBER, "status": "delivered"})
    await phone.send({"type": "status", "ref": "d", "id": first["id"], "attempt": 1,
                      "to": "+0987654321", "status": "delivered"})
    for _ in range(2):  # the first two oks went by while waiting for the retry
        await phone.recv_type("ok")
    detail = await get(hub, f"/api/messages/{body['messageId']}")
    assert detail["status"] == "delivered"
    assert [(r["to"], r["attempt"]) for r in detail["recipients"]] == [
        (NUMBER, 2), ("+0987654321", 1)]
    statuses = [(e["status"], e["attempt"]) for e in detail["events"]]
    assert ("failed", 1) in statuses and ("dispatched", 2) in statuses
    await phone.close()


async def test_retries_end_as_failed_when_exhausted_or_permanent(make_hub):
    hub = await make_hub(SMSNODES_DELIVERY_RETRY_BACKOFF="0.1",
                         SMSNODES_DELIVERY_MAX_ATTEMPTS="2")
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    _, body = await post(hub)
    frame = (await phone.recv_sms(1))[0]
    for attempt in (1, 2):
        assert frame["attempt"] == attempt
        await phone.ack(frame)
        await phone.send({"type": "status", "id": frame["id"], "attempt": attempt,
                          "to": NUMBER, "status": "failed", "error": "RESULT_ERROR_RADIO_OFF"})
        if attempt == 1:
            frame = (await phone.recv_sms(1, timeout=3))[0]
    await phone.nothing_for(0.6)  # two attempts made: no third
    detail = await get(hub, f"/api/messages/{body['messageId']}")
    assert detail["status"] == "failed"
    assert detail["recipients"][0]["error"] == "RESULT_ERROR_RADIO_OFF"

    _, permanent = await post(hub)
    frame = (await phone.recv_sms(1))[0]
    await phone.send({"type": "status", "id": frame["id"], "to": NUMBER, "status": "failed",
                      "error": "RESULT_ERROR_NULL_PDU"})
    await phone.nothing_for(0.6)  # a permanent error is not retried
    assert (await get(hub, f"/api/messages/{permanent['messageId']}"))["status"] == "failed"
    await phone.close()


async def test_idempotency_key_replays_the_first_response_and_creates_nothing(hub, pool):
    await add_device(hub, "shop-phone-1")
    key = {"Idempotency-Key": "order-1234"}
    status, first = await post(hub, key)
    status2, second = await post(hub, key)
    assert status == status2 == 200 and first == second
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    # The same key with another request is a conflict, not a silent replay.
    status, body = await post(hub, key, message="something else")
    assert status == 409 and "Idempotency-Key" in body["error"]
    # Keys belong to an account: another account's same key is a new message.
    await add_device(hub, "other-phone")
    resp = await hub.post("/api/send-sms", headers=key, json={
        "deviceUsername": "other-phone", "password": PASSWORD,
        "phoneNumbers": [NUMBER], "message": "hello"})
    assert resp.status == 200
    assert await pool.fetchval("SELECT count(*) FROM messages") == 2


async def test_concurrent_requests_with_one_key_create_exactly_one_message(hub, pool):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    key = {"Idempotency-Key": "race-42"}
    results = await asyncio.gather(*(post(hub, key) for _ in range(10)))
    assert all(status == 200 for status, _ in results)
    assert len({body["messageId"] for _, body in results}) == 1
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    await phone.recv_sms(1)
    await phone.nothing_for(0.3)  # pushed once
    await phone.close()


async def test_idempotency_key_older_than_a_day_is_forgotten(hub, pool):
    await add_device(hub, "shop-phone-1")
    key = {"Idempotency-Key": "old-key"}
    _, first = await post(hub, key)
    await pool.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    _, second = await post(hub, key)
    assert second["messageId"] != first["messageId"]


async def test_bearer_and_basic_work_on_send_with_schedules(hub):
    await add_device(hub, "shop-phone-1")
    created = await (await hub.post("/api/tokens", json={}, headers=basic())).json()
    resp = await hub.post("/api/send-sms", headers={"Authorization": f"Bearer {created['token']}"},
                          json={"phoneNumbers": [NUMBER], "message": "x", "scheduledAt": at(60)})
    body = await resp.json()
    assert resp.status == 200 and body["message"] == "SMS scheduled successfully"


async def test_retries_go_in_rounds_and_never_resend_what_was_sent_or_cancelled(make_hub):
    hub = await make_hub(SMSNODES_DELIVERY_RETRY_BACKOFF="0.1")
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    other = "+0987654321"
    _, body = await post(hub, phoneNumbers=[NUMBER, other])
    [first] = await phone.recv_sms(1)
    await phone.ack(first)

    async def report(frame: dict[str, Any], to: str, status: str, **extra: Any) -> None:
        await phone.send({"type": "status", "ref": f"{to}{status}", "id": frame["id"],
                          "attempt": frame["attempt"], "to": to, "status": status, **extra})
        await phone.recv_type("ok")

    # One recipient fails for now; the other is still with the phone: no retry yet, so two
    # attempts of one message are never out at once.
    await report(first, NUMBER, "failed", error="RESULT_ERROR_NO_SERVICE",
                 at="2026-11-21T10:00:02.500Z")
    await phone.nothing_for(0.6)
    detail = await get(hub, f"/api/messages/{body['messageId']}")
    assert [r["status"] for r in detail["recipients"]] == ["scheduled", "accepted"]
    failed_event = next(e for e in detail["events"] if e["status"] == "failed")
    assert failed_event["reportedAt"] == "2026-11-21T10:00:02.500Z"
    # The round ends when the other recipient has its outcome: then the retry goes out.
    await report(first, other, "sent")
    [retry] = await phone.recv_sms(1, timeout=3)
    assert (retry["attempt"], retry["to"]) == (2, [NUMBER])
    await phone.ack(retry)
    # A failed *delivery* report after 'sent' is an outcome: the SMS is never sent twice.
    await report(first, other, "failed", error="RESULT_ERROR_GENERIC_FAILURE")
    await report(retry, NUMBER, "delivered")
    await phone.nothing_for(0.6)
    detail = await get(hub, f"/api/messages/{body['messageId']}")
    assert detail["status"] == "partial"
    assert [(r["status"], r["attempt"]) for r in detail["recipients"]] == [
        ("delivered", 2), ("failed", 1)]

    # A transient failure of a cancelled recipient is shown, never retried.
    _, cancelled = await post(hub)
    [frame] = await phone.recv_sms(1)
    await phone.ack(frame)
    resp = await hub.delete(f"/api/messages/{cancelled['messageId']}", headers=basic())
    assert resp.status == 200
    await phone.recv_type("cancel")
    await report(frame, NUMBER, "failed", error="RESULT_ERROR_NO_SERVICE")
    await phone.nothing_for(0.6)
    assert (await get(hub, f"/api/messages/{cancelled['messageId']}"))["status"] == "failed"
    await phone.close()


async def test_a_cancel_made_while_the_phone_was_away_reaches_it_on_return(hub):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    token = phone.auth["token"]
    _, body = await post(hub, message="stored on the phone")
    [frame] = await phone.recv_sms(1)
    await phone.ack(frame, ref="a")
    await phone.recv_type("ok")
    await phone.close()
    await asyncio.sleep(0.2)
    resp = await hub.delete(f"/api/messages/{body['messageId']}", headers=basic())
    assert resp.status == 200
    back = await RawPhone.connect(ws_url(hub))
    await back.send({"type": "auth", "token": token})
    assert (await back.recv())["type"] == "auth_ok"
    assert await back.recv() == {"type": "cancel", "id": frame["id"]}
    # Repeats are harmless (a phone ignores a cancel it cannot use), so the hub stops
    # telling only once the cancel is known to be on the wire.
    await _until_withdrawn(hub, body["messageId"])
    await back.close()
    again = await RawPhone.connect(ws_url(hub))  # told, so not on every login
    await again.send({"type": "auth", "token": token})
    assert (await again.recv())["type"] == "auth_ok"
    await again.nothing_for(0.3)
    await again.close()


async def _until_withdrawn(hub: Any, message_id: int) -> None:
    async def recorded() -> bool:
        return not await hub.app[POOL].fetchval(
            "SELECT withdraw_pending FROM messages WHERE id = $1", message_id)

    await until(recorded, 5, "the written cancel was never recorded")


async def test_a_cancel_dropped_by_a_closing_socket_is_told_at_the_next_login(hub, pool):
    from smsnodes_hub.appkeys import HUB
    from smsnodes_hub.messaging import withdrawal

    device_id = await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    token = phone.auth["token"]
    _, body = await post(hub, message="on the phone")
    [frame] = await phone.recv_sms(1)
    account_id = await pool.fetchval("SELECT account_id FROM devices WHERE id = $1", device_id)
    await withdrawal.cancel(pool, account_id, body["messageId"])
    # The socket is closing but not yet detached, so the cancel frame is dropped unwritten.
    hub_ = hub.app[HUB]
    hub_.local(device_id).close(1000)
    await hub_.withdraw(device_id, body["messageId"])
    await phone.closed_with()
    await phone.close()
    assert await pool.fetchval("SELECT withdraw_pending FROM messages WHERE id = $1",
                               body["messageId"])
    back = await RawPhone.connect(ws_url(hub))
    await back.send({"type": "auth", "token": token})
    assert (await back.recv())["type"] == "auth_ok"
    assert await back.recv_type("cancel") == {"type": "cancel", "id": frame["id"]}
    await back.close()


async def test_revoking_a_phones_session_token_closes_its_socket_with_4401(hub):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    listed = await get(hub, "/api/tokens", basic())
    [session] = [t for t in listed["data"] if t["kind"] == "session"]
    resp = await hub.delete(f"/api/tokens/{session['id']}", headers=basic())
    assert resp.status in (200, 204)
    assert await phone.closed_with(timeout=5) == 4401
    await phone.close()


async def test_revocations_made_while_the_bus_was_down_apply_once_it_is_back(
        hub, pool, admin_dsn, database_url):
    import asyncpg

    from smsnodes_hub.auth import tokens
    from tests.support import database_name

    device_id = await add_device(hub, "shop-phone-1")
    created = await (await hub.post("/api/tokens", json={}, headers=basic())).json()
    bearer = {"Authorization": f"Bearer {created['token']}"}
    await get(hub, "/api/messages", bearer)  # the Bearer login is cached now
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    # The hub's LISTEN connection dies and cannot come back yet; the revocations' NOTIFY
    # reach nobody.
    name = database_name(database_url)
    admin = await asyncpg.connect(admin_dsn)
    try:
        async with pool.acquire() as mine:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            # The process's one LISTEN connection (smsnodes_hub/bus.py).
            assert await mine.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND query LIKE 'LISTEN%'", name) == 1
            assert await tokens.revoke_token(mine, device_id, created["id"])
            assert await tokens.revoke_session_tokens(mine, device_id) == 1
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 8
    while (await hub.get("/api/messages", headers=bearer)).status != 401:
        assert loop.time() < deadline, "the revoked Bearer token still works"
        await asyncio.sleep(0.1)
    assert await phone.closed_with(timeout=8) == 4401
    await phone.close()
