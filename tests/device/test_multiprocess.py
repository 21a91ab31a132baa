"""Several hub processes on one database act as one hub (DESIGN.md, "Scaling out"), and
credential changes reach live sockets."""

from __future__ import annotations

import asyncio
import uuid

from smsnodes_hub.appkeys import AUTH, HUB
from smsnodes_hub.auth import accounts
from smsnodes_hub.device import sessions
from tests.support import PASSWORD, add_device, bus_tap, send, until, ws_url
from tests.wsclient import RawPhone


async def test_send_on_one_process_reaches_a_phone_on_another(make_hub):
    hub_a = await make_hub()
    hub_b = await make_hub()
    await add_device(hub_a, "shop-phone-1")
    await until(lambda: hub_a.app[HUB].other_processes >= 1)
    phone = await RawPhone.login(ws_url(hub_b), "shop-phone-1", PASSWORD)
    body = await send(hub_a, text="via the bus", priority=3)
    assert body["deviceOnline"] is True  # presence is shared
    [frame] = await phone.recv_sms(1)
    assert frame["id"] == body["messageId"] and frame["message"] == "via the bus"
    health_a = await (await hub_a.get("/api/health")).json()
    assert health_a["connectedDevices"] == 1
    await phone.close()


async def test_messages_in_flight_on_a_dead_process_are_queued_again(make_hub, pool):
    hub_a = await make_hub(SMSNODES_DEVICE_ACK_TIMEOUT="0.2")
    await add_device(hub_a, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub_a), "shop-phone-1", PASSWORD)
    body = await send(hub_a, text="orphan")
    await phone.recv_sms(1)
    # The process vanishes without cleaning up: simulate with a stale heartbeat row.
    await pool.execute("UPDATE hub_processes SET heartbeat_at = now() - interval '1 hour'")
    hub_a.app[HUB].connections.clear()
    await phone.session.close()
    hub_b = await make_hub(SMSNODES_DEVICE_ACK_TIMEOUT="0.2")
    await asyncio.sleep(0.3)  # older than the ack timeout: the grace before a sweep
    # hub_b's sweep requeues it (at start and every few seconds)...
    await hub_b.app[HUB]._sweep_orphans()
    state = await pool.fetchval("SELECT state FROM messages WHERE id = $1", body["messageId"])
    assert state == "queued"
    # ...and the phone gets it when it comes back on hub_b.
    back = await RawPhone.login(ws_url(hub_b), "shop-phone-1", PASSWORD)
    [frame] = await back.recv_sms(1)
    assert frame["id"] == body["messageId"] and frame["attempt"] == 1
    await back.close()


async def test_password_change_closes_the_phone_and_voids_its_token(hub, pool):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    token = phone.auth["token"]
    auth = hub.app[AUTH]
    async with pool.acquire() as conn:
        await accounts.change_password(
            conn, auth.kdf, auth.params, "shop-phone-1", PASSWORD, "a new password"
        )
    assert await phone.closed_with(timeout=10) == 4401
    again = await RawPhone.connect(ws_url(hub))
    await again.send({"type": "auth", "token": token})
    assert (await again.recv())["type"] == "auth_failed"
    await again.session.close()
    # The old password stops working even though it was cached by this process.
    resp = await hub.post("/api/send-sms", json={
        "deviceUsername": "shop-phone-1", "password": PASSWORD,
        "phoneNumbers": ["+1234567890"], "message": "x"})
    assert resp.status == 401
    await phone.session.close()


async def test_removing_a_device_closes_its_socket(hub, pool):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    await accounts.remove_device(pool, "shop-phone-1")
    assert await phone.closed_with(timeout=10) == 4401
    await phone.session.close()


async def test_a_send_reaches_a_phone_on_a_process_started_a_moment_ago(make_hub):
    # No waiting for heartbeats: hub_a looked at the process table before hub_b existed,
    # and must wake it all the same.
    hub_a = await make_hub()
    await add_device(hub_a, "shop-phone-1")
    await asyncio.sleep(0.5)  # hub_a's first heartbeat is over: it saw no other process
    hub_b = await make_hub()
    phone = await RawPhone.login(ws_url(hub_b), "shop-phone-1", PASSWORD)
    assert hub_a.app[HUB].other_processes == 0  # stale, as it is for up to 5 s
    body = await send(hub_a, text="right away")
    assert body["deviceOnline"] is True
    [frame] = await phone.recv_sms(1, timeout=3)
    assert frame["id"] == body["messageId"]
    await phone.close()


async def test_a_login_on_a_process_that_thinks_it_is_alone_still_replaces(make_hub):
    hub_a = await make_hub()
    await add_device(hub_a, "shop-phone-1")
    await asyncio.sleep(0.5)  # hub_a's first heartbeat is over: it saw no other process
    hub_b = await make_hub()
    old = await RawPhone.login(ws_url(hub_b), "shop-phone-1", PASSWORD)
    assert hub_a.app[HUB].other_processes == 0
    new = await RawPhone.login(ws_url(hub_a), "shop-phone-1", PASSWORD)
    assert await old.closed_with(timeout=3) == 4409
    await new.close()
    await old.session.close()


async def test_only_a_login_that_replaces_a_session_tells_the_other_processes(
        make_hub, database_url):
    # Every NOTIFY waits for one lock, held until its commit is flushed: a fleet coming
    # back after a restart (no sessions left) must not log in one phone at a time.
    hub_a = await make_hub()
    hub_b = await make_hub()
    device_id = await add_device(hub_a, "shop-phone-1")
    async with bus_tap(database_url) as tap:
        await tap.published()
        first = await RawPhone.login(ws_url(hub_a), "shop-phone-1", PASSWORD)
        assert not [p for p in await tap.published() if p.startswith("replace:")]
        second = await RawPhone.login(ws_url(hub_b), "shop-phone-1", PASSWORD)
        replaced = [p for p in await tap.published() if p.startswith("replace:")]
        assert [p.split(":")[1] for p in replaced] == [str(device_id)]
        assert await first.closed_with(timeout=3) == 4409
    await second.close()
    await first.session.close()


async def test_a_login_racing_another_on_a_second_process_still_replaces_it(
        pool, database_url):
    # The second login's statement starts before the first commits and waits for the
    # device's row: its snapshot never shows the first session, yet it must replace it.
    device_id = await add_device(pool, "shop-phone-1")
    epoch = await pool.fetchval("SELECT credential_epoch FROM devices WHERE id = $1", device_id)
    process_a, process_b = uuid.uuid4(), uuid.uuid4()
    conn_a, conn_b = uuid.uuid4(), uuid.uuid4()
    await sessions.register_process(pool, process_a)
    await sessions.register_process(pool, process_b)
    async with bus_tap(database_url) as tap, pool.acquire() as first:
        tx = first.transaction()
        await tx.start()
        await sessions.register(
            first, process_a, sessions.Registration(device_id, conn_a, "127.0.0.1", epoch))
        racing = asyncio.ensure_future(sessions.register(
            pool, process_b, sessions.Registration(device_id, conn_b, "127.0.0.1", epoch)))
        await until(lambda: pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"))
        await tx.commit()
        assert await racing is not None
        assert await tap.published() == [f"replace:{device_id}:{conn_b}"]
    assert await pool.fetchval("SELECT connection_id FROM device_sessions") == conn_b


async def test_a_login_racing_the_offline_announcement_still_announces_online(make_hub, pool):
    from smsnodes_hub.device import sessions
    from tests.support import basic

    # Only the outbox rows matter here; the target is a closed port on this machine, so the
    # worker's attempts fail at once and nothing leaves the machine.
    hub = await make_hub(SMSNODES_WEBHOOKS_ALLOW_PRIVATE="true",
                         SMSNODES_WEBHOOKS_ALLOW_HTTP="true")
    device_id = await add_device(hub, "shop-phone-1")
    resp = await hub.post("/api/webhooks", headers=basic(), json={
        "url": "http://127.0.0.1:9/hooks/sms", "events": ["device.online", "device.offline"]})
    assert resp.status == 201
    await pool.execute("UPDATE devices SET announced_online = true, "
                       "last_seen_at = now() - interval '1 hour' WHERE id = $1", device_id)
    async with pool.acquire() as other:
        # Another process announces the device offline and has not committed yet...
        tx = other.transaction()
        await tx.start()
        assert len(await other.fetch(sessions.ANNOUNCE_OFFLINE, 0.5,
                                     sessions.PROCESS_STALE)) == 1
        # ...while the phone logs in here: its registration waits for that row.
        login = asyncio.create_task(RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD))
        await asyncio.sleep(0.5)
        assert not login.done()
        await tx.commit()
    phone = await login
    events = [r["event_type"] for r in await pool.fetch(
        "SELECT event_type FROM webhook_deliveries ORDER BY id")]
    assert events == ["device.offline", "device.online"]
    assert await pool.fetchval("SELECT announced_online FROM devices WHERE id = $1", device_id)
    await phone.close()
