"""The device socket's auth phase, connection rules and framing (PROTOCOL.md 1, 5-7)."""

from __future__ import annotations

import asyncio
import itertools

import orjson
from aiohttp import WSMsgType

from smsnodes_hub.appkeys import AUTH
from tests.support import PASSWORD, add_device, until, ws_url
from tests.wsclient import RawPhone


async def test_password_login_answers_auth_ok_with_token_heartbeat_window(hub, pool):
    device_id = await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    auth = phone.auth
    assert auth == {
        "type": "auth_ok", "deviceId": device_id, "username": "shop-phone-1",
        "token": auth["token"], "heartbeat": 30, "window": 100, "protocol": 1,
    }
    assert isinstance(auth["token"], str) and len(auth["token"]) > 40
    row = await pool.fetchrow("SELECT model, app_version, sims, last_seen_at FROM devices")
    assert (row["model"], row["app_version"], row["sims"]) == ("Pixel 7", "1.4.2", 2)
    assert row["last_seen_at"] is not None
    await phone.close()


async def test_token_login_answers_with_the_same_token_and_costs_no_argon2(hub):
    await add_device(hub, "shop-phone-1")
    first = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    token = first.auth["token"]
    await first.close()
    runs = hub.app[AUTH].kdf.runs
    for _ in range(3):
        again = await RawPhone.connect(ws_url(hub))
        await again.send({"type": "auth", "token": token})
        reply = await again.recv()
        assert reply["type"] == "auth_ok" and reply["token"] == token
        await again.close()
    assert hub.app[AUTH].kdf.runs == runs


async def test_wrong_password_unknown_user_and_bad_token_get_4401(hub):
    await add_device(hub, "shop-phone-1")
    attempts = [
        {"type": "auth", "username": "shop-phone-1", "password": "wrong password"},
        {"type": "auth", "username": "nobody-here", "password": PASSWORD},
        {"type": "auth", "token": "snh_not-a-real-token"},
        {"type": "auth", "token": 12},
        {"type": "auth", "username": "shop-phone-1"},
        {"type": "heartbeat"},  # anything but auth first
    ]
    for frame in attempts:
        phone = await RawPhone.connect(ws_url(hub))
        await phone.send(frame)
        assert await phone.recv() == {"type": "auth_failed", "error": "Invalid credentials"}
        assert await phone.closed_with() == 4401, frame
        await phone.session.close()


async def test_silence_gets_auth_timeout_4408(make_hub):
    hub = await make_hub(SMSNODES_DEVICE_AUTH_TIMEOUT="0.3")
    phone = await RawPhone.connect(ws_url(hub))
    assert await phone.recv() == {"type": "auth_failed", "error": "Authentication timeout"}
    assert await phone.closed_with() == 4408
    await phone.session.close()


async def test_brute_force_gets_4429_but_the_owner_from_another_address_gets_in(make_hub):
    hub = await make_hub(SMSNODES_SECURITY_LOGIN_MAX_FAILURES="3")
    await add_device(hub, "shop-phone-1")
    codes = []
    for i in range(5):
        phone = await RawPhone.connect(ws_url(hub))
        await phone.send({"type": "auth", "username": "shop-phone-1", "password": f"guess {i}"})
        reply = await phone.recv()
        codes.append(await phone.closed_with())
        await phone.session.close()
    assert codes[:3] == [4401, 4401, 4401]
    assert codes[3:] == [4429, 4429]
    assert reply["error"] == "Too many attempts" and reply["retryAfter"] >= 1
    # The right password from the attacking address is refused too while locked out...
    locked = await RawPhone.connect(ws_url(hub))
    await locked.send({"type": "auth", "username": "shop-phone-1", "password": PASSWORD})
    assert (await locked.recv())["type"] == "auth_failed"
    assert await locked.closed_with() == 4429
    await locked.session.close()
    # ...but the owner on another address logs in.
    owner = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD, local_addr="127.0.0.2")
    assert owner.auth["type"] == "auth_ok"
    await owner.close()


async def test_new_connection_replaces_the_older_with_4409(hub):
    await add_device(hub, "shop-phone-1")
    old = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    new = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    assert await old.closed_with() == 4409
    await new.send({"type": "heartbeat", "ref": "hb", "battery": 50})
    assert await new.recv() == {"type": "ok", "ref": "hb"}
    health = await (await hub.get("/api/health")).json()
    assert health["connectedDevices"] == 1
    await new.close()
    await old.session.close()


async def test_replacement_works_across_two_hub_processes(make_hub):
    hub_a = await make_hub()
    hub_b = await make_hub()
    await add_device(hub_a, "shop-phone-1")
    # Let each process see the other (the heartbeat loop runs at start).
    old = await RawPhone.login(ws_url(hub_a), "shop-phone-1", PASSWORD)
    await until(lambda: hub_b.app[_hub_key()].other_processes >= 1, 10)
    new = await RawPhone.login(ws_url(hub_b), "shop-phone-1", PASSWORD)
    assert await old.closed_with(timeout=10) == 4409
    health = await (await hub_a.get("/api/health")).json()
    assert health["connectedDevices"] == 1
    await new.close()
    await old.session.close()


def _hub_key():
    from smsnodes_hub.appkeys import HUB

    return HUB


async def test_oversized_binary_and_non_json_frames_close_the_connection(hub):
    await add_device(hub, "shop-phone-1")
    cases = [
        ("big", 1009),
        ("binary", 4400),
        ("garbage", 4400),
        ("array", 4400),
    ]
    for case, code in cases:
        phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
        if case == "big":
            payload = "x" * (64 * 1024 + 1)
            await phone.ws.send_str(orjson.dumps({"type": "heartbeat", "pad": payload}).decode())
        elif case == "binary":
            await phone.ws.send_bytes(b'{"type": "heartbeat"}')
        elif case == "garbage":
            await phone.ws.send_str("{not json")
        else:
            await phone.ws.send_str("[1, 2]")
        assert await phone.closed_with() == code, case
        await phone.session.close()


async def test_unknown_type_and_bad_fields_get_error_frames_and_the_socket_stays(hub):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    await phone.send({"type": "selfie", "ref": "r1"})
    assert await phone.recv() == {
        "type": "error", "ref": "r1", "error": "unknown frame type 'selfie'"}
    await phone.send({"type": "ack"})
    reply = await phone.recv()
    assert reply["type"] == "error" and "id" in reply["error"] and "ref" not in reply
    await phone.send({"type": "status", "ref": 7, "id": 1, "to": "+1234567890", "status": "lost"})
    reply = await phone.recv()
    assert reply["type"] == "error" and reply["ref"] == 7 and "status" in reply["error"]
    await phone.send({"type": "heartbeat", "ref": "hb", "battery": 101})
    assert (await phone.recv())["ref"] == "hb"
    await phone.send({"type": "heartbeat", "ref": "hb2", "battery": 80, "charging": True,
                      "signal": 3})
    assert await phone.recv() == {"type": "ok", "ref": "hb2"}
    await phone.close()


async def test_heartbeat_telemetry_is_stored(hub, pool):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    await phone.send({"type": "heartbeat", "ref": 1, "battery": 87, "charging": True,
                      "signal": 3})
    assert await phone.recv() == {"type": "ok", "ref": 1}
    row = await pool.fetchrow("SELECT battery, charging, signal, telemetry_at FROM devices")
    assert (row["battery"], row["charging"], row["signal"]) == (87, True, 3)
    await phone.close()


async def test_hub_pings_every_heartbeat_and_drops_a_phone_that_never_pongs(make_hub):
    hub = await make_hub(SMSNODES_DEVICE_HEARTBEAT="1")
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.connect(ws_url(hub), autoping=False)
    await phone.send({"type": "auth", "username": "shop-phone-1", "password": PASSWORD})
    assert (await phone.recv())["heartbeat"] == 1
    msg = await phone.ws.receive(timeout=3)
    assert msg.type == WSMsgType.PING
    # No pong: within another heartbeat the hub gives up on us.
    while True:
        msg = await phone.ws.receive(timeout=4)
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
            break
    # The hub forgets the phone (its cleanup runs right after the drop).
    await _until_async(hub, lambda health: health["connectedDevices"] == 0, 3)
    await phone.session.close()


async def test_a_phone_that_pongs_is_pinged_every_heartbeat_and_kept(make_hub):
    hub = await make_hub(SMSNODES_DEVICE_HEARTBEAT="1")
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.connect(ws_url(hub), autoping=False)
    await phone.send({"type": "auth", "username": "shop-phone-1", "password": PASSWORD})
    assert (await phone.recv())["type"] == "auth_ok"
    loop = asyncio.get_running_loop()
    pings = []
    while len(pings) < 4:
        msg = await phone.ws.receive(timeout=3)
        assert msg.type == WSMsgType.PING
        pings.append(loop.time())
        await phone.ws.pong(msg.data)
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    # A heartbeat apart, late by at most one keepalive tick (a tenth of it) plus scheduling.
    assert all(0.8 < gap < 1.4 for gap in gaps), gaps
    health = await (await hub.get("/api/health")).json()
    assert health["connectedDevices"] == 1
    await phone.close()


async def _until_async(hub, predicate, timeout: float) -> None:
    async def health_matches() -> bool:
        return predicate(await (await hub.get("/api/health")).json())

    await until(health_matches, timeout)


async def test_shutdown_closes_phones_with_1001(make_hub):
    hub = await make_hub()
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    closing = asyncio.create_task(phone.closed_with(timeout=10))
    await hub.close()
    assert await closing == 1001
    await phone.session.close()


async def test_auth_ok_is_the_first_frame_even_when_a_send_races_the_login(hub, pool):
    from tests.support import send

    device_id = await add_device(hub, "shop-phone-1")
    phone = await RawPhone.connect(ws_url(hub))
    async with pool.acquire() as lock:
        # The device row held: the login's session registration waits on it, while sends
        # (which only need a key share for their foreign keys) go through.
        tx = lock.transaction()
        await tx.start()
        await lock.execute("SELECT 1 FROM devices WHERE id = $1 FOR NO KEY UPDATE", device_id)
        await phone.send({"type": "auth", "username": "shop-phone-1", "password": PASSWORD})
        await until(lambda: hub.app[_hub_key()].local(device_id) is not None, 5)
        body = await send(hub, text="racing the login")
        await tx.rollback()
    assert (await phone.recv())["type"] == "auth_ok"
    assert body["sentImmediately"] is False  # it was not pushed during the request
    [frame] = await phone.recv_sms(1)
    assert frame["id"] == body["messageId"]
    await phone.close()


async def test_an_idle_paced_phone_does_not_keep_claiming(hub, pool):
    from tests.support import send

    device_id = await add_device(hub, "shop-phone-1")
    await pool.execute("UPDATE devices SET pace_per_minute = 5 WHERE id = $1", device_id)
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    # Count the database's transactions while the phone sits idle with nothing sent this
    # minute: a claim loop would be thousands a second; the hub's own clock a few dozen.
    count = ("SELECT xact_commit + xact_rollback FROM pg_stat_database "
             "WHERE datname = current_database()")
    await asyncio.sleep(1.2)  # statistics reach pg_stat_database about once a second
    before = await pool.fetchval(count)
    await asyncio.sleep(2.5)
    assert await pool.fetchval(count) - before < 200
    body = await send(hub, text="paced")
    [frame] = await phone.recv_sms(1)
    assert frame["id"] == body["messageId"]
    await phone.ack(frame)
    await asyncio.sleep(0.2)
    conn = hub.app[_hub_key()].local(device_id)
    claims = conn.claims
    await asyncio.sleep(1)
    assert conn.claims == claims  # the next look is when the minute has room, not sooner
    await phone.close()


async def test_phones_logging_in_together_all_get_in_with_a_multi_lane_kdf(make_hub):
    """Production-shaped Argon2id (several lanes) and two runs at a time: every phone of a
    burst of logins gets auth_ok, and the hub still answers logins afterwards."""
    hub = await make_hub(SMSNODES_SECURITY_ARGON2_MEMORY_KIB="8192",
                         SMSNODES_SECURITY_ARGON2_LANES="4",
                         SMSNODES_SECURITY_KDF_CONCURRENCY="2")
    names = [f"burst-{n}" for n in range(4)]
    for name in names:
        await add_device(hub, name)
    phones = await asyncio.wait_for(asyncio.gather(
        *(RawPhone.login(ws_url(hub), name, PASSWORD) for name in names)), 30)
    assert [p.auth["username"] for p in phones] == names
    late = await asyncio.wait_for(RawPhone.login(ws_url(hub), names[0], PASSWORD), 10)
    assert late.auth["type"] == "auth_ok"
    for phone in [*phones, late]:
        await phone.close()
