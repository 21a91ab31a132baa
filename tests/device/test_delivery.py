"""Delivery: the offline queue, priority push, the window, acks, redelivery, restarts,
status reports and inbound SMS (PROTOCOL.md 2-5), through real sockets and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import asyncpg
import orjson
from aiohttp import WSMsgType
from device_sim import PhoneBehaviour, SimulatedPhone

from smsnodes_hub.appkeys import HUB
from tests.support import NUMBER, PASSWORD, add_device, database_name, send, ws_url
from tests.wsclient import RawPhone, StalledPhone, client_frame


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


async def _frames_until(phone: RawPhone, *, sms: int, ok: str | None = None,
                        timeout: float = 5.0) -> list[dict[str, Any]]:
    """The next `sms` frames, and (when `ok` is given) that ref's `ok` in whatever order the
    two arrive: an ack's `ok` and the push it makes room for race each other."""
    frames: list[dict[str, Any]] = []
    confirmed = ok is None
    while len(frames) < sms or not confirmed:
        frame = await phone.recv(timeout)
        if frame["type"] == "sms":
            frames.append(frame)
        elif frame == {"type": "ok", "ref": ok}:
            confirmed = True
        else:
            raise AssertionError(f"unexpected frame {frame}")
    return frames


async def test_hub_restart_delivers_everything_once_same_attempt(make_hub, pool):
    # Window 3 on both hubs: seven messages cannot all be in flight, so at the restart some
    # are acked, some in flight un-acked and some still waiting in the queue.
    first = await make_hub(SMSNODES_DEVICE_WINDOW="3")
    await add_device(first, "shop-phone-1")
    priorities = [2, 5, 1, 3, 5, 1, 4]
    ids = []
    for n, priority in enumerate(priorities):
        body = await send(first, priority=priority, text=f"m{n}")
        assert body["deviceOnline"] is False
        ids.append(body["messageId"])
    priority_of = dict(zip(ids, priorities, strict=True))
    text_of = {mid: f"m{n}" for n, mid in enumerate(ids)}

    phone = await RawPhone.login(ws_url(first), "shop-phone-1", PASSWORD)
    assert phone.auth["window"] == 3
    token = phone.auth["token"]
    seen: list[tuple[int, int]] = []  # every (id, attempt) the phone was handed, in order
    batch = await phone.recv_sms(3)
    assert [f["message"] for f in batch] == ["m1", "m4", "m6"]  # 5, 5, 4
    await phone.ack(batch[0], ref="a1")
    [fourth] = await _frames_until(phone, sms=1, ok="a1")  # the freed slot: the next by priority
    assert fourth["message"] == "m3"
    await phone.nothing_for(0.3)  # the window is full again
    before = [*batch, fourth]
    seen += [(f["id"], f["attempt"]) for f in before]
    acked = batch[0]
    in_flight = [*batch[1:], fourth]
    waiting = [mid for mid in ids if mid not in {f["id"] for f in before}]
    assert [text_of[mid] for mid in waiting] == ["m0", "m2", "m5"]  # never dispatched
    assert await pool.fetchval(
        "SELECT count(*) FROM messages WHERE state = 'dispatched'") == 3

    # The hub goes down with the phone attached: it is told 1001 (PROTOCOL.md 7)...
    closing = asyncio.create_task(phone.closed_with(timeout=10))
    await first.close()
    assert await closing == 1001
    await phone.session.close()
    # ...and what was in flight waits again, durably, with its attempt unchanged.
    rows = {r["id"]: r for r in await pool.fetch(
        "SELECT id, state, attempt, dispatched_to FROM messages")}
    assert rows[acked["id"]]["state"] == "accepted"
    for mid in [f["id"] for f in in_flight] + waiting:
        assert (rows[mid]["state"], rows[mid]["attempt"], rows[mid]["dispatched_to"]) == (
            "queued", 1, None), text_of[mid]
    assert await pool.fetchval("SELECT count(*) FROM hub_processes") == 0
    assert await pool.fetchval("SELECT count(*) FROM device_sessions") == 0

    # A new hub on the same database; a send while the phone is still away.
    second = await make_hub(SMSNODES_DEVICE_WINDOW="3")
    late = await send(second, priority=5, text="while restarted")
    assert late["deviceOnline"] is False
    priority_of[late["messageId"]] = 5
    text_of[late["messageId"]] = "while restarted"
    every = [*ids, late["messageId"]]

    back = await RawPhone.connect(ws_url(second))
    await back.send({"type": "auth", "token": token})
    auth = await back.recv()
    assert auth["type"] == "auth_ok" and auth["window"] == 3, auth
    after: list[dict[str, Any]] = []
    outstanding = await back.recv_sms(3)
    await back.nothing_for(0.3)  # the window holds after a restart too
    while outstanding:
        frame = outstanding.pop(0)
        after.append(frame)
        await back.ack(frame, ref=f"b{len(after)}")
        more = 1 if len(after) + len(outstanding) < 7 else 0
        outstanding += await _frames_until(back, sms=more, ok=f"b{len(after)}")
    await back.nothing_for(0.5)  # nothing comes a second time
    seen += [(f["id"], f["attempt"]) for f in after]

    # Everything not acked before the restart, each once, by priority then age: the requeued
    # in-flight ones are not favoured, the new priority-5 message goes ahead of older 4s.
    expected = sorted(
        [*(f["id"] for f in in_flight), *waiting, late["messageId"]],
        key=lambda mid: (-priority_of[mid], mid),
    )
    assert [f["id"] for f in after] == expected
    assert [f["message"] for f in after] == [
        "m4", "while restarted", "m6", "m3", "m0", "m2", "m5"]
    assert acked["id"] not in {f["id"] for f in after}  # acked: never again
    # The in-flight frames come again unchanged (same id and attempt: the phone's
    # idempotency key), no frame carries a new attempt, and over both connections the phone
    # saw every message once plus exactly the in-flight repeats.
    again = {f["id"]: f for f in after}
    for frame in in_flight:
        assert again[frame["id"]] == frame
    assert all(f["attempt"] == 1 for f in after)
    assert sorted(seen) == sorted(
        [*((mid, 1) for mid in every), *((f["id"], 1) for f in in_flight)])

    rows = await pool.fetch("SELECT state, attempt FROM messages")
    assert len(rows) == len(every)
    assert {(r["state"], r["attempt"]) for r in rows} == {("accepted", 1)}
    assert await pool.fetchval("SELECT count(*) FROM recipients WHERE attempt <> 1") == 0
    events = await pool.fetch(
        "SELECT message_id, status, attempt FROM message_timeline ORDER BY at, id")
    assert {e["attempt"] for e in events} == {1}
    accepted = [e["message_id"] for e in events if e["status"] == "accepted"]
    assert sorted(accepted) == sorted(every)  # each acked exactly once
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
        "SELECT status, position FROM message_timeline WHERE message_id = $1 ORDER BY at, id",
        mid)
    assert [e["status"] for e in events] == [
        "queued", "dispatched", "accepted", "sent", "delivered", "failed"]
    # The first report's row stands for the ack too, the recipient's row for its delivery
    # (sql/022).
    written = await pool.fetch(
        """SELECT status, with_ack FROM message_events
            WHERE message_id = $1 AND status NOT IN ('queued', 'dispatched') ORDER BY id""",
        mid)
    assert [(e["status"], e["with_ack"]) for e in written] == [
        ("sent", True), ("failed", None)]
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


async def test_an_attempt_beyond_any_attempt_is_an_error_frame(hub, pool):
    """Attempts are integer columns: 2**31 names none, and is refused as a field of the frame
    (found by tests/fuzz: it failed the batch's statement and closed the socket with 1013,
    so the phone would send it again after every reconnect)."""
    await add_device(hub, "shop-phone-1")
    mine = await send(hub)
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    await phone.recv_sms(1)
    error = "attempt must be an integer from 1 to 2147483647"
    for frame in ({"type": "ack", "id": mine["messageId"], "attempt": 2**31, "ref": "a"},
                  {"type": "status", "id": mine["messageId"], "attempt": 2**62, "ref": "s",
                   "to": NUMBER, "status": "sent"}):
        await phone.send(frame)
        assert await phone.recv_type("error") == {"type": "error", "ref": frame["ref"],
                                                  "error": error}
    await phone.send({"type": "ack", "id": mine["messageId"], "ref": "ok"})
    assert await phone.recv_type("ok") == {"type": "ok", "ref": "ok"}  # still open
    assert await pool.fetchval("SELECT state FROM messages WHERE id = $1",
                               mine["messageId"]) == "accepted"
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
        while (msg := await phone.ws.receive(timeout=5)).type == WSMsgType.TEXT:
            assert orjson.loads(msg.data)["type"] != "ok", msg.data
        assert msg.type == WSMsgType.CLOSE and msg.data == 1013
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


async def _flood(phone: StalledPhone, frames: int | None, hub: Any, device_id: int) -> int:
    """Send bad frames, each answered by an error frame the stalled phone never reads, until
    `frames` were sent or (None) the hub drops the socket. Returns how many went."""
    bad = {"type": "nonsense", "ref": "r" * 200}
    sent = 0
    deadline = asyncio.get_running_loop().time() + 20
    with contextlib.suppress(ConnectionError):
        while frames is None or sent < frames:
            if frames is None and hub.app[HUB].local(device_id) is None:
                break
            assert asyncio.get_running_loop().time() < deadline, "never dropped"
            for _ in range(100):
                phone.writer.write(client_frame(orjson.dumps(bad)))
            await phone.writer.drain()
            sent += 100
    return sent


async def _dropped_and_requeued(hub: Any, pool: asyncpg.Pool, device_id: int,
                                message_id: int, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (hub.app[HUB].local(device_id) is not None
           or await pool.fetchval("SELECT state FROM messages WHERE id = $1",
                                  message_id) != "queued"):
        assert loop.time() < deadline, "the stalled phone is still attached"
        await asyncio.sleep(0.05)
    health = await (await hub.get("/api/health")).json()
    assert health["connectedDevices"] == 0
    assert (await send(hub))["deviceOnline"] is False


async def test_a_phone_that_stops_reading_is_dropped_when_its_outbox_overflows(make_hub, pool):
    # A 30 s heartbeat: only the overflow can end it in time. The outbox is big enough that
    # while the socket still takes bytes the writer keeps up with a burst; so it overflows
    # only once the socket is full and the writer is stuck for good.
    hub = await make_hub(SMSNODES_DEVICE_OUTBOX_SIZE="500", SMSNODES_DEVICE_HEARTBEAT="30")
    device_id = await add_device(hub, "shop-phone-1")
    phone = await StalledPhone.login(hub.server.host, hub.server.port, "shop-phone-1",
                                     PASSWORD)
    body = await send(hub)
    assert body["sentImmediately"] is True
    assert (await phone.recv())["id"] == body["messageId"]  # in flight, never acked
    phone.stop_reading()
    started = asyncio.get_running_loop().time()
    await _flood(phone, None, hub, device_id)
    await _dropped_and_requeued(hub, pool, device_id, body["messageId"], 5)
    assert asyncio.get_running_loop().time() - started < 10
    phone.close()


async def test_a_writer_stuck_on_a_full_socket_is_dropped_within_a_heartbeat(make_hub, pool):
    # An outbox too big to overflow: the bound on each write (and the keepalive, which
    # does not live in the stuck writer) must end it.
    hub = await make_hub(SMSNODES_DEVICE_OUTBOX_SIZE="100000", SMSNODES_DEVICE_HEARTBEAT="1")
    device_id = await add_device(hub, "shop-phone-1")
    phone = await StalledPhone.login(hub.server.host, hub.server.port, "shop-phone-1",
                                     PASSWORD)
    body = await send(hub)
    assert (await phone.recv())["id"] == body["messageId"]
    phone.stop_reading()
    await _flood(phone, 20_000, hub, device_id)  # megabytes of replies: the writer blocks
    await _dropped_and_requeued(hub, pool, device_id, body["messageId"], 6)
    phone.close()


async def test_a_row_that_does_not_decrypt_fails_alone_and_the_batch_goes_out(hub, pool):
    await add_device(hub, "shop-phone-1")
    ids = [(await send(hub, text=f"m{n}"))["messageId"] for n in range(3)]
    await pool.execute("UPDATE messages SET body = '\\x00'::bytea WHERE id = $1", ids[1])
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    frames = await phone.recv_sms(2)
    assert [f["id"] for f in frames] == [ids[0], ids[2]]
    await phone.nothing_for(0.3)
    rows = await pool.fetch("SELECT m.state, r.state AS recipient, r.error FROM messages m "
                            "JOIN recipients r ON r.message_id = m.id WHERE m.id = $1", ids[1])
    assert [(r["state"], r["recipient"]) for r in rows] == [("done", "failed")]
    assert "decrypt" in rows[0]["error"]
    await phone.close()


async def test_a_report_for_an_older_attempt_is_accepted_and_ignored(make_hub, pool):
    hub = await make_hub(SMSNODES_DELIVERY_RETRY_BACKOFF="0.1")
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    body = await send(hub)
    [first] = await phone.recv_sms(1)
    await phone.send({"type": "status", "ref": "f", "id": first["id"], "attempt": 1,
                      "to": NUMBER, "status": "failed", "error": "RESULT_ERROR_NO_SERVICE"})
    assert await phone.recv_type("ok") == {"type": "ok", "ref": "f"}
    [second] = await phone.recv_sms(1, timeout=10)
    assert second["attempt"] == 2
    await phone.send({"type": "status", "ref": "old", "id": first["id"], "attempt": 1,
                      "to": NUMBER, "status": "delivered"})
    assert await phone.recv_type("ok") == {"type": "ok", "ref": "old"}
    row = await pool.fetchrow("SELECT state, attempt FROM recipients WHERE message_id = $1",
                              body["messageId"])
    assert (row["state"], row["attempt"]) == ("pending", 2)
    await phone.close()


async def test_a_message_a_claim_could_not_see_still_goes_out(hub, database_url):
    """A claim skips rows another transaction holds (SKIP LOCKED) and then believes the
    queue empty. Nothing would wake the socket again: the hub's heartbeat must notice."""
    await add_device(hub, "shop-phone-1")
    body = await send(hub, text="held")
    holder = await asyncpg.connect(database_url)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT 1 FROM messages WHERE id = $1 FOR UPDATE",
                             body["messageId"])
        phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
        await phone.nothing_for(0.5)  # claimed around the locked row: nothing to push
        await tx.commit()
        # Within a hub heartbeat (5 s), without any new send, ack or reconnect.
        [frame] = await phone.recv_sms(1, timeout=8)
        assert frame["id"] == body["messageId"] and frame["message"] == "held"
        await phone.close()
    finally:
        await holder.close()


async def test_a_failed_claim_is_tried_again_soon_while_the_phone_waits_for_its_minute(
    hub: Any, pool: asyncpg.Pool
) -> None:
    """A claim the database refused is tried again a second later, even on a paced phone
    whose window waits for room in its minute: an urgent message that fits the minute goes
    out then, not when the minute ends."""
    device_id = await add_device(hub, "shop-phone-1")
    await pool.execute("UPDATE devices SET pace_per_minute = 3 WHERE id = $1", device_id)
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    await send(hub, numbers=[NUMBER, "+1234567891"])
    [frame] = await phone.recv_sms(1)
    await phone.ack(frame)
    # Two of the minute's three SMS are used: a message to two waits for the next minute.
    await send(hub, numbers=[NUMBER, "+1234567892"])
    await phone.nothing_for(0.3)
    # From here the claim's UPDATE fails, as it would with the database in trouble.
    await pool.execute("""
        CREATE FUNCTION refuse_updates() RETURNS trigger LANGUAGE plpgsql
            AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
        CREATE TRIGGER refuse_updates BEFORE UPDATE ON messages
            FOR EACH ROW EXECUTE FUNCTION refuse_updates();""")
    urgent = await send(hub, priority=3, text="urgent")
    await phone.nothing_for(0.3)
    await pool.execute("DROP TRIGGER refuse_updates ON messages")
    [frame] = await phone.recv_sms(1, timeout=5)
    assert frame["id"] == urgent["messageId"]
    await phone.close()
