"""Routing (ACCOUNTS.md "Routing rules" 1-2 and "Sending"): sends authenticated as the
account go to the least-loaded connected phone with pacing room, ties to the one served least
recently; with none, they wait in the account's pool for the first phone with room. Pinned
sends never move. Real phones on real sockets, a real PostgreSQL, one and two hub processes."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
from aiohttp.test_utils import TestClient

from smsnodes_hub.appkeys import HUB
from tests.accounts_support import Phone, account_with_phones, send_routed
from tests.support import NUMBER, HubFactory, add_account, basic, get, until


async def test_a_trickle_of_routed_sends_alternates_between_two_phones(hub: TestClient,
                                                                       pool: asyncpg.Pool
                                                                       ) -> None:
    account = await account_with_phones(hub, 2)
    one, two = [await Phone.login(hub, name) for name in account.phones]
    try:
        chosen = []
        for n in range(6):
            answer = await send_routed(hub, account, message=f"m{n}")
            assert answer["deviceOnline"] is True, answer
            chosen.append(answer["device"])
            # Each phone acks what it gets: every send finds both phones idle, a tie.
            await until(lambda total=n + 1: len(one.received) + len(two.received) == total)
            await until(lambda: pool.fetchval(
                "SELECT count(*) = 0 FROM messages WHERE state = 'dispatched'"))
        assert chosen in (["acme-1", "acme-2"] * 3, ["acme-2", "acme-1"] * 3), chosen
        assert len(one.received) == len(two.received) == 3
        # The answer named the phone that really got it.
        for phone in (one, two):
            for frame in phone.received:
                assert chosen[int(frame["message"][1:])] == phone.name
    finally:
        await one.close()
        await two.close()


async def test_the_least_loaded_of_three_phones_gets_the_next_send(hub: TestClient) -> None:
    account = await account_with_phones(hub, 3)
    busy = await Phone.login(hub, "acme-1", acking=False)  # holds what it gets, un-acked
    idle = [await Phone.login(hub, name) for name in ("acme-2", "acme-3")]
    try:
        for n in range(3):
            await send_routed(hub, account, device="acme-1", message=f"held {n}")
        await until(lambda: len(busy.received) == 3)
        answers = [await send_routed(hub, account, message=f"r{n}") for n in range(4)]
        assert Counter(a["device"] for a in answers) == {"acme-2": 2, "acme-3": 2}
        await until(lambda: sum(len(p.received) for p in idle) == 4)
        assert len(busy.received) == 3
    finally:
        for phone in (busy, *idle):
            await phone.close()


async def test_concurrent_routed_sends_spread_over_the_phones(make_hub: HubFactory) -> None:
    hub = await make_hub(SMSNODES_DEVICE_WINDOW="30")
    account = await account_with_phones(hub, 2)
    phones = [await Phone.login(hub, name, acking=False) for name in account.phones]
    try:
        answers = await asyncio.gather(*(send_routed(hub, account, message=f"c{n}")
                                         for n in range(20)))
        by_phone = Counter(a["device"] for a in answers)
        assert set(by_phone) == {"acme-1", "acme-2"}
        # Greedy within each batch; two batches at once may each favour the same phone a
        # little, never by much.
        assert abs(by_phone["acme-1"] - by_phone["acme-2"]) <= 4, by_phone
        await until(lambda: sum(len(p.received) for p in phones) == 20)
        for phone in phones:
            assert len(phone.received) == by_phone[phone.name]
    finally:
        for phone in phones:
            await phone.close()


async def test_with_no_phone_online_the_pool_keeps_it_for_the_first_that_connects(
    hub: TestClient, pool: asyncpg.Pool,
) -> None:
    account = await account_with_phones(hub, 2)
    low = await send_routed(hub, account, message="low", priority=1)
    high = await send_routed(hub, account, message="high", priority=5)
    for answer in (low, high):
        assert answer["device"] is None and answer["deviceOnline"] is False, answer
        assert answer["sentImmediately"] is False
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE device_id IS NULL") == 2
    phone = await Phone.login(hub, "acme-2")
    try:
        await until(lambda: len(phone.received) == 2)
        assert [f["message"] for f in phone.received] == ["high", "low"]  # priority order
        message = await get(hub, f"/api/messages/{low['messageId']}", account.bearer)
        dispatched = [e for e in message["events"] if e["status"] == "dispatched"]
        assert [e["device"] for e in dispatched] == ["acme-2"]
    finally:
        await phone.close()


async def test_the_pool_flushes_to_a_phone_as_soon_as_its_pacing_has_room(
    hub: TestClient, pool: asyncpg.Pool,
) -> None:
    """Rule 2: every connected phone is paced out, so the send waits in the pool; it goes to
    the first phone with room as soon as that phone has it."""
    account = await account_with_phones(hub, 2)
    one, two = [await Phone.login(hub, name) for name in account.phones]
    try:
        for name in account.phones:
            resp = await hub.put("/api/device/pacing", headers=basic(name),
                                 json={"perMinute": 1})
            assert resp.status == 200
        first = await send_routed(hub, account, message="uses one's minute")
        second = await send_routed(hub, account, message="uses two's minute")
        assert {first["device"], second["device"]} == {"acme-1", "acme-2"}
        await until(lambda: len(one.received) + len(two.received) == 2)
        # Both minutes are full now, and routing knows it.
        await until(lambda: pool.fetchval(
            "SELECT count(*) = 2 FROM device_sessions WHERE room_at > now()"))
        third = await send_routed(hub, account, message="waits")
        assert third["device"] is None and third["deviceOnline"] is True, third
        assert await pool.fetchval("SELECT device_id FROM messages WHERE id = $1",
                                   third["messageId"]) is None
        # Lift one phone's pacing: that phone takes the pool's message at once.
        resp = await hub.put("/api/device/pacing", headers=basic("acme-2"),
                             json={"perMinute": None})
        assert resp.status == 200
        await until(lambda: len(two.received) == 2, timeout=5)
        assert two.received[-1]["message"] == "waits"
    finally:
        await one.close()
        await two.close()


async def test_pinned_sends_wait_for_their_phone_and_never_move(hub: TestClient,
                                                                pool: asyncpg.Pool) -> None:
    account = await account_with_phones(hub, 2)
    other = await Phone.login(hub, "acme-2")
    try:
        by_name = await send_routed(hub, account, device="acme-1", message="for one")
        assert by_name["device"] == "acme-1" and by_name["deviceOnline"] is False
        resp = await hub.post("/api/send-sms", headers=basic("acme-1"), json={
            "phoneNumbers": [NUMBER], "message": "one's own"})
        own = await resp.json()
        assert own["device"] == "acme-1" and own["deviceOnline"] is False
        await asyncio.sleep(0.5)
        assert other.received == []
        # acme-1 comes, takes them, and drops without acking: they wait for it again.
        one = await Phone.login(hub, "acme-1", acking=False)
        await until(lambda: len(one.received) == 2)
        await one.drop()
        one_id = await pool.fetchval("SELECT id FROM devices WHERE username = 'acme-1'")
        await until(lambda: pool.fetchval(
            "SELECT count(*) = 2 FROM messages WHERE state = 'queued' AND device_id = $1",
            one_id))
        await asyncio.sleep(0.5)
        assert other.received == []
        back = await Phone.login(hub, "acme-1")
        try:
            await until(lambda: len(back.received) == 2)
            assert {f["attempt"] for f in back.received} == {1}
        finally:
            await back.close()
    finally:
        await other.close()


async def test_a_device_the_account_does_not_own_is_a_400(hub: TestClient,
                                                          pool: asyncpg.Pool) -> None:
    account = await account_with_phones(hub, 1)
    await account_with_phones(hub, 1, name="other")
    for name in ("other-1", "nobody", "other"):
        answer = await send_routed(hub, account, status=400, device=name)
        assert answer == {"error": f"Unknown device {name}", "code": "invalid_request"}
    for bad in (7, "", "a b", ["acme-1"]):
        answer = await send_routed(hub, account, status=400, device=bad)
        assert answer["error"] == "device must be the name of one of the account's phones"
    # A phone's own credentials name only that phone.
    resp = await hub.post("/api/send-sms", headers=basic("acme-1"), json={
        "phoneNumbers": [NUMBER], "message": "x", "device": "other-1"})
    assert resp.status == 400
    resp = await hub.post("/api/send-sms", headers=basic("acme-1"), json={
        "phoneNumbers": [NUMBER], "message": "x", "device": "acme-1"})
    assert resp.status == 200
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    # Idempotency: a refused send leaves no key behind.
    resp = await hub.post("/api/send-sms", json={"phoneNumbers": [NUMBER], "message": "y",
                                                 "device": "nobody"},
                          headers={**account.bearer, "Idempotency-Key": "k1"})
    assert resp.status == 400
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys") == 0


async def test_routing_across_two_hub_processes(make_hub: HubFactory, pool: asyncpg.Pool
                                                ) -> None:
    hub_a = await make_hub()
    hub_b = await make_hub()
    account = await account_with_phones(hub_a, 2)
    here = await Phone.login(hub_a, "acme-1", acking=False)
    there = await Phone.login(hub_b, "acme-2", acking=False)
    try:
        # acme-1 holds one already: the next send from process A goes to process B's phone.
        await send_routed(hub_a, account, device="acme-1", message="held")
        await until(lambda: len(here.received) == 1)
        answer = await send_routed(hub_a, account, message="across")
        assert answer["device"] == "acme-2" and answer["deviceOnline"] is True
        await until(lambda: len(there.received) == 1, timeout=3)
        assert there.received[0]["id"] == answer["messageId"]
        # And from process B, the one on A gets the next (loads 1 and 1: least recently).
        nxt = await send_routed(hub_b, account, message="back")
        assert nxt["device"] == "acme-1"
        await until(lambda: len(here.received) == 2, timeout=3)
        # A pool message is taken by whichever process's phone has room first.
        await pool.execute("UPDATE device_sessions SET room_at = now() + interval '1 hour'")
        waiting = await send_routed(hub_a, account, message="pooled")
        assert waiting["device"] is None
        await pool.execute("UPDATE device_sessions SET room_at = NULL")
        await hub_b.app[HUB].announce_pool(
            await pool.fetchval("SELECT id FROM accounts WHERE name = 'acme'"))
        await until(lambda: len(there.received) + len(here.received) == 4, timeout=3)
    finally:
        await here.close()
        await there.close()


async def test_an_account_without_phones_still_stores_its_send(hub: TestClient) -> None:
    await add_account(hub, "empty")
    resp = await hub.post("/api/send-sms", headers=basic("empty"), json={
        "phoneNumbers": [NUMBER], "message": "nobody yet"})
    answer = await resp.json()
    assert resp.status == 200, answer
    assert (answer["device"], answer["deviceOnline"], answer["sentImmediately"]) == (
        None, False, False)
