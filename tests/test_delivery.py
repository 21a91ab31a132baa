"""Delivery: the offline queue, priority push, the window, acks, redelivery, restarts,
status reports and inbound SMS (PROTOCOL.md 2-5), through real sockets and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import asyncpg
from device_sim import PhoneBehaviour, SimulatedPhone

from smsnodes_hub.app import create_app
from smsnodes_hub.appkeys import HUB

from .conftest import PASSWORD, add_device, database_name, test_settings, ws_url
from .wsclient import RawPhone

NUMBER = "+1234567890"


async def send(client: Any, username: str = "shop-phone-1", *, priority: int = 1,
               text: str = "hello", numbers: list[str] | None = None) -> dict[str, Any]:
    resp = await client.post("/api/send-sms", json={
        "deviceUsername": username, "password": PASSWORD,
        "phoneNumbers": numbers or [NUMBER], "message": text, "priority": priority,
    })
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def test_offline_queue_arrives_by_priority_then_age(hub):
    await add_device(hub, "shop-phone-1")
    ids = {}
    for n, priority in enumerate([1, 3, 5, 2, 5]):
        body = await send(hub, priority=priority, text=f"m{n}")
        assert body["deviceOnline"] is False and body["sentImmediately"] is False
        ids[body["messageId"]] = (priority, f"m{n}")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    frames = await phone.recv_sms(5)
    assert [f["priority"] for f in frames] == [5, 5, 3, 2, 1]
    assert [f["message"] for f in frames] == ["m2", "m4", "m1", "m3", "m0"]
    for frame in frames:
        assert frame["attempt"] == 1 and frame["to"] == [NUMBER]
        # Whole seconds, as the contract shows them: fixed-pattern parsers on phones.
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", frame["createdAt"])
        assert frame["expiresAt"] is None
    await phone.close()


async def test_online_send_is_pushed_during_the_request(hub, pool):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    body = await send(hub, priority=4, text="now", numbers=["+1 234 567 890", "+0987654321"])
    assert body["deviceOnline"] is True and body["sentImmediately"] is True
    [frame] = await phone.recv_sms(1)
    assert frame["id"] == body["messageId"]
    assert frame["to"] == ["+1234567890", "+0987654321"] and frame["message"] == "now"
    state = await pool.fetchval("SELECT state FROM messages WHERE id = $1", frame["id"])
    assert state == "dispatched"
    await phone.ack(frame, ref="a1")
    assert await phone.recv() == {"type": "ok", "ref": "a1"}
    state = await pool.fetchval("SELECT state FROM messages WHERE id = $1", frame["id"])
    assert state == "accepted"
    await phone.close()


async def test_window_caps_unacked_frames_and_priority_overtakes(make_hub):
    hub = await make_hub(SMSNODES_DEVICE_WINDOW="3")
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    assert phone.auth["window"] == 3
    bodies = [await send(hub, priority=1, text=f"low{n}") for n in range(9)]
    assert [b["sentImmediately"] for b in bodies] == [True] * 3 + [False] * 6
    first = await phone.recv_sms(3)
    await phone.nothing_for(0.3)  # never more than the window in flight
    urgent = await send(hub, priority=5, text="urgent")
    assert urgent["sentImmediately"] is False
    await phone.nothing_for(0.2)
    await phone.ack(first[0])
    [next_frame] = await phone.recv_sms(1)
    assert next_frame["message"] == "urgent"  # ahead of the six older priority-1 messages
    await phone.ack(next_frame)
    rest = []
    pending = first[1:]
    while len(rest) < 6:
        await phone.ack(pending.pop(0))
        frame = (await phone.recv_sms(1))[0]
        rest.append(frame["message"])
        pending.append(frame)
    assert rest == [f"low{n}" for n in range(3, 9)]
    await phone.close()


async def test_ack_timeout_resends_the_same_id_and_attempt(make_hub, pool):
    hub = await make_hub(SMSNODES_DEVICE_ACK_TIMEOUT="0.4")
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    body = await send(hub)
    [frame] = await phone.recv_sms(1)
    [again] = await phone.recv_sms(1, timeout=3)
    assert again == frame
    await phone.ack(again)
    await phone.nothing_for(1.2)  # acked: never pushed again
    assert await pool.fetchval("SELECT attempt FROM messages WHERE id = $1",
                               body["messageId"]) == 1
    await phone.close()


async def test_disconnect_mid_flight_redelivers_on_reconnect_and_acked_never_again(hub):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    token = phone.auth["token"]
    await send(hub, text="acked")
    await send(hub, text="in flight")
    acked, in_flight = await phone.recv_sms(2)
    await phone.ack(acked, ref="r")
    await phone.recv_type("ok")
    await phone.close()
    await asyncio.sleep(0.2)
    back = await RawPhone.connect(ws_url(hub))
    await back.send({"type": "auth", "token": token})
    assert (await back.recv())["type"] == "auth_ok"
    [redelivered] = await back.recv_sms(1)
    assert redelivered == in_flight
    await back.nothing_for(0.4)
    await back.close()


async def test_hub_restart_delivers_everything_once_same_attempt(database_url, aiohttp_client,
                                                                   pool):
    settings = test_settings(database_url)
    first = await aiohttp_client(create_app(settings, database_url, migrate=False))
    await add_device(first, "shop-phone-1")
    phone = await RawPhone.login(ws_url(first), "shop-phone-1", PASSWORD)
    token = phone.auth["token"]
    sent = [await send(first, text=f"m{n}", priority=1 + n % 5) for n in range(4)]
    frames = await phone.recv_sms(4)
    await phone.ack(frames[0])
    await asyncio.sleep(0.2)
    await phone.session.close()
    await first.close()  # the hub goes down with three messages un-acked

    second = await aiohttp_client(create_app(settings, database_url, migrate=False))
    await send(second, text="while restarted")
    back = await RawPhone.connect(ws_url(second))
    await back.send({"type": "auth", "token": token})
    assert (await back.recv())["type"] == "auth_ok"
    again = await back.recv_sms(4)
    assert sorted(f["message"] for f in again) == sorted(
        [f["message"] for f in frames[1:]] + ["while restarted"]
    )
    assert all(f["attempt"] == 1 for f in again)
    for frame in again:
        await back.ack(frame)
    await back.nothing_for(0.5)
    states = await pool.fetch("SELECT state FROM messages")
    assert {r["state"] for r in states} == {"accepted"} and len(states) == len(sent) + 1
    await back.close()


async def test_status_reports_follow_the_monotonic_rule(hub, pool):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    body = await send(hub, numbers=[NUMBER, "+0987654321"])
    [frame] = await phone.recv_sms(1)
    mid = frame["id"]

    async def report(status: str, ref: str, to: str = NUMBER, **extra: Any) -> dict[str, Any]:
        await phone.send({"type": "status", "ref": ref, "id": mid, "attempt": 1, "to": to,
                          "status": status, "at": "2026-11-21T10:00:02Z", **extra})
        return await phone.recv()

    # A status report stands in for a lost ack.
    assert await report("sent", "r1") == {"type": "ok", "ref": "r1"}
    assert await pool.fetchval("SELECT state FROM messages WHERE id = $1", mid) == "accepted"
    assert await report("delivered", "r2") == {"type": "ok", "ref": "r2"}
    assert await report("sent", "r3") == {"type": "ok", "ref": "r3"}  # backwards: ignored
    assert await report("failed", "r4", error="RESULT_ERROR_NULL_PDU") == {
        "type": "ok", "ref": "r4"}  # after delivered: ignored
    assert await report("failed", "r5", to="+0987654321",
                        error="RESULT_ERROR_NULL_PDU") == {"type": "ok", "ref": "r5"}
    rows = await pool.fetch(
        "SELECT position, state, error FROM recipients WHERE message_id = $1 ORDER BY position",
        body["messageId"],
    )
    assert [(r["state"], r["error"]) for r in rows] == [
        ("delivered", None), ("failed", "RESULT_ERROR_NULL_PDU")]
    # A repeated report (phone resent its outbox) changes nothing and is still confirmed.
    assert await report("delivered", "r2") == {"type": "ok", "ref": "r2"}
    events = await pool.fetch(
        "SELECT status, position FROM message_events WHERE message_id = $1 ORDER BY id", mid)
    assert [e["status"] for e in events] == [
        "queued", "dispatched", "accepted", "sent", "delivered", "failed"]
    # Older attempts are ignored, unknown ones refused.
    assert (await report("sent", "r6", attempt=2))["type"] == "error"
    await phone.close()


async def test_reports_for_unknown_or_foreign_messages_are_refused(hub):
    await add_device(hub, "shop-phone-1")
    await add_device(hub, "other-phone")
    theirs = await send(hub, "other-phone")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    for mid in (999_999, theirs["messageId"]):
        await phone.send({"type": "status", "ref": "x", "id": mid, "to": NUMBER,
                          "status": "sent"})
        assert await phone.recv() == {"type": "error", "ref": "x",
                                      "error": f"Unknown message {mid}"}
        await phone.send({"type": "ack", "id": mid})
        assert await phone.recv() == {"type": "error", "error": f"Unknown message {mid}"}
    mine = await send(hub)
    await phone.recv_sms(1)
    await phone.send({"type": "status", "ref": "y", "id": mine["messageId"],
                      "to": "+1111111111", "status": "sent"})
    reply = await phone.recv()
    assert reply["type"] == "error" and "recipient" in reply["error"]
    await phone.close()


async def test_ok_is_sent_only_after_commit(hub, pool, admin_dsn, database_url):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    body = await send(hub)
    [frame] = await phone.recv_sms(1)
    name = database_name(database_url)
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
    try:
        await phone.send({"type": "status", "ref": "r1", "id": frame["id"], "to": NUMBER,
                          "status": "sent"})
        # No ok: the phone keeps the report and will send it again after reconnecting.
        assert await phone.closed_with() == 1013
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
    # The test's own pool lost its connections too: look with a fresh one.
    fresh = await asyncpg.connect(database_url)
    state = await fresh.fetchval("SELECT state FROM recipients WHERE message_id = $1",
                                 body["messageId"])
    await fresh.close()
    assert state == "pending"
    back = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    await back.send({"type": "status", "ref": "r1", "id": frame["id"], "to": NUMBER,
                     "status": "sent"})
    assert await back.recv_type("ok") == {"type": "ok", "ref": "r1"}
    await back.close()
    await phone.session.close()


async def test_inbound_sms_is_stored_encrypted_once_per_ref(hub, pool):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    frame = {"type": "inbound", "ref": "9b2c6f0e", "from": "+1234567890",
             "message": "STOP", "receivedAt": "2026-11-21T10:05:00Z"}
    for _ in range(2):
        await phone.send(frame)
        assert await phone.recv() == {"type": "ok", "ref": "9b2c6f0e"}
    rows = await pool.fetch("SELECT sender, body, received_at FROM inbound_messages")
    assert len(rows) == 1
    assert b"STOP" not in rows[0]["body"] and b"1234567890" not in rows[0]["sender"]
    await phone.send({**frame, "ref": None})
    assert (await phone.recv())["type"] == "error"
    await phone.close()


async def test_simulated_phone_round_trip_with_reports(hub, pool):
    await add_device(hub, "shop-phone-1")
    behaviour = PhoneBehaviour(sent_delay=0.01, delivered_delay=0.01, seed=1)
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD, behaviour) as phone:
        ids = [(await send(hub, text=f"m{n}"))["messageId"] for n in range(5)]
        await phone.wait_for_sms(5)
        await phone.wait_for(lambda: phone.outbox_size == 0 and len(phone.reports) == 10)
    states = await pool.fetch("SELECT state FROM recipients WHERE message_id = ANY($1)", ids)
    assert [r["state"] for r in states] == ["delivered"] * 5


async def test_slow_reader_is_disconnected_without_blocking_the_hub(make_hub):
    hub = await make_hub(SMSNODES_DEVICE_OUTBOX_SIZE="8")
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    conn = hub.app[HUB].local(phone.auth["deviceId"])
    # The phone stops reading; the hub keeps queueing replies until the outbox overflows.
    for n in range(12):
        conn.send(b'{"type":"ok","ref":%d}' % n)
    assert not conn.open
    health = await hub.get("/api/health")
    assert health.status == 200
    await phone.session.close()
