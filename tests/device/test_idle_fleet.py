"""What idle phones cost the hub, which holds thousands of them (scripts/bench_capacity.py
measures how much): no compression state per socket, and nothing left of a fleet that
came and went, except the minute of a paced phone."""

from __future__ import annotations

import asyncio
import gc

from smsnodes_hub.appkeys import AUTH, HUB
from smsnodes_hub.auth import accounts
from smsnodes_hub.device import protocol
from smsnodes_hub.device.window import Window
from smsnodes_hub.device.writer import SocketWriter
from tests.support import PASSWORD, add_device, basic, send, until, ws_url
from tests.wsclient import RawPhone


async def test_a_phone_offering_compression_is_answered_without_it(hub):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD, compress=15)
    assert phone.ws.compress == 0  # permessage-deflate refused: frames go uncompressed
    body = await send(hub, text="plain")
    [frame] = await phone.recv_sms(1)
    assert frame["id"] == body["messageId"] and frame["message"] == "plain"
    await phone.close()


async def test_a_fleet_that_came_and_went_leaves_nothing_behind(hub):
    names = [f"fleet-phone-{i}" for i in range(20)]
    for name in names:
        await add_device(hub, name)
    phones = await asyncio.gather(*(RawPhone.login(ws_url(hub), n, PASSWORD) for n in names))
    the_hub = hub.app[HUB]
    assert len(the_hub.connections) == len(names)
    for phone in phones:
        await phone.close()
    await until(lambda: not the_hub.connections and not the_hub._detaching)
    assert the_hub.pacers == {}
    assert len(the_hub.keepalive) == 0


async def test_a_connected_phone_holds_nothing_of_its_login(hub):
    # The auth frame carries the password: once the phone is in, nothing may keep it, nor
    # the half kilobyte a login frame costs each of thousands of phones.
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    gc.collect()
    assert [o for o in gc.get_objects() if isinstance(o, protocol.Auth)] == []
    assert not [o for o in gc.get_objects()
                if isinstance(o, dict) and o.get("type") == "auth" and "password" in o]
    await phone.close()


async def test_a_closed_connection_is_freed_at_once_not_by_the_garbage_collector(hub):
    # A collection of the oldest generation walks every object of thousands of live
    # sockets: the hub's own part of a closed one must not have to wait for it.
    await add_device(hub, "shop-phone-1")
    the_hub = hub.app[HUB]
    gc.collect()
    gc.disable()
    try:
        phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
        assert [o for o in gc.get_objects() if isinstance(o, SocketWriter)]
        await phone.close()
        await until(lambda: not the_hub.connections and not the_hub._detaching)
        left = [o for o in gc.get_objects() if isinstance(o, SocketWriter | Window)]
        assert left == []
    finally:
        gc.enable()


async def test_a_paced_phone_keeps_its_minute_across_a_reconnect(hub):
    device_id = await add_device(hub, "shop-phone-1")
    resp = await hub.put("/api/device/pacing", headers=basic(), json={"perMinute": 1})
    assert resp.status == 200
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    await send(hub, text="the minute's one")
    [frame] = await phone.recv_sms(1)
    await phone.ack(frame)
    await phone.close()
    the_hub = hub.app[HUB]
    await until(lambda: not the_hub.connections and not the_hub._detaching)
    await send(hub, text="waits for the next minute")
    again = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    assert the_hub.pacers[device_id].allowance() == 0  # not reset by the reconnect
    await again.nothing_for(0.5)
    await again.close()


async def test_a_fleet_back_at_once_with_its_tokens_gets_in_but_for_a_voided_one(hub, pool):
    # A reconnect storm in small: the phone whose token the password change voided is
    # refused alone, the rest get in, each with its session and its queued message.
    names = [f"fleet-phone-{i}" for i in range(12)]
    for name in names:
        await add_device(hub, name)
    first = await asyncio.gather(*(RawPhone.login(ws_url(hub), n, PASSWORD) for n in names))
    tokens = {n: p.auth["token"] for n, p in zip(names, first, strict=True)}
    for phone in first:
        await phone.close()
    the_hub = hub.app[HUB]
    await until(lambda: not the_hub.connections and not the_hub._detaching)
    queued = {n: (await send(hub, n, text=f"for {n}"))["messageId"] for n in names}
    auth = hub.app[AUTH]
    async with pool.acquire() as conn:
        await accounts.change_password(conn, auth.kdf, auth.params, names[5], PASSWORD,
                                       "a new password")

    async def back(name: str) -> tuple[RawPhone, dict[str, object]]:
        phone = await RawPhone.connect(ws_url(hub))
        await phone.send({"type": "auth", "token": tokens[name]})
        return phone, await phone.recv()

    again = await asyncio.gather(*(back(n) for n in names))
    answers = {n: reply["type"] for n, (_p, reply) in zip(names, again, strict=True)}
    assert answers == {n: "auth_failed" if n == names[5] else "auth_ok" for n in names}
    for name, (phone, _reply) in zip(names, again, strict=True):
        if name != names[5]:
            [frame] = await phone.recv_sms(1)
            assert frame["id"] == queued[name]
    live = {r["device_id"] for r in await pool.fetch("SELECT device_id FROM device_sessions")}
    assert len(live) == len(names) - 1
    for phone, _reply in again:
        await phone.close()
