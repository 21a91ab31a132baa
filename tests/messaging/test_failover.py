"""Failover (ACCOUNTS.md "Routing rules" 3-5): a routed message pushed to a phone and not
acked reaches another connected phone of the account within a second when that phone's
connection ends; the first phone, back, is told to drop it; what a phone acked stays with
it; a transient failure is retried on another phone; every `dispatched` event names its
phone. Real phones on real sockets, one and two hub processes."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from aiohttp.test_utils import TestClient

from smsnodes_hub.appkeys import HUB
from tests.accounts_support import Phone, account_with_phones, send_routed
from tests.support import HubFactory, basic, get, until


async def hold_two_on(hub: TestClient, account: object, phone: Phone) -> list[int]:
    """Two routed messages that `phone` holds un-acked (it is the only phone connected)."""
    ids = [(await send_routed(hub, account, message=f"held {n}"))["messageId"]  # type: ignore[arg-type]
           for n in range(2)]
    await until(lambda: len(phone.received) == 2)
    return ids


async def test_a_phone_that_drops_hands_its_unacked_messages_to_another_within_a_second(
    make_hub: HubFactory, pool: asyncpg.Pool,
) -> None:
    hub = await make_hub(SMSNODES_DEVICE_ACK_TIMEOUT="60")  # no resend muddies the count
    account = await account_with_phones(hub, 2)
    first = await Phone.login(hub, "acme-1", acking=False)
    ids = await hold_two_on(hub, account, first)
    second = await Phone.login(hub, "acme-2")
    await asyncio.sleep(0.3)
    assert second.received == []  # they are acme-1's while it is connected
    started = time.monotonic()
    await first.drop()
    await until(lambda: sorted(second.ids) == sorted(ids), timeout=1.0,
                message="not handed over within a second")
    assert time.monotonic() - started < 1.0
    # The same messages, the same attempt: nothing is pushed twice as a new attempt.
    assert {(f["id"], f["attempt"]) for f in second.received} == {(i, 1) for i in ids}
    await asyncio.sleep(0.3)
    assert len(second.received) == 2
    # The first phone comes back: it is told to drop both, and is given neither again.
    back = await Phone.login(hub, "acme-1", acking=False)
    try:
        await until(lambda: sorted(back.cancelled) == sorted(ids))
        assert back.received == []
        await until(lambda: pool.fetchval("SELECT count(*) = 0 FROM pending_cancels"))
        for message_id in ids:
            message = await get(hub, f"/api/messages/{message_id}", account.bearer)
            dispatched = [e["device"] for e in message["events"]
                          if e["status"] == "dispatched"]
            assert dispatched == ["acme-1", "acme-2"]  # rule 5: the phone of each attempt
            assert message["status"] == "accepted"
    finally:
        await back.close()
        await second.close()


async def test_what_a_phone_acked_stays_with_it(hub: TestClient, pool: asyncpg.Pool) -> None:
    account = await account_with_phones(hub, 2)
    first = await Phone.login(hub, "acme-1")  # acks
    answer = await send_routed(hub, account, message="acked")
    await until(lambda: pool.fetchval("SELECT state = 'accepted' FROM messages WHERE id = $1",
                                      answer["messageId"]))
    second = await Phone.login(hub, "acme-2")
    try:
        await first.drop()
        await asyncio.sleep(1.0)
        assert second.received == []
        owner = await pool.fetchval(
            "SELECT d.username FROM messages m JOIN devices d ON d.id = m.device_id "
            "WHERE m.id = $1", answer["messageId"])
        assert owner == "acme-1"
    finally:
        await second.close()


async def test_failover_between_two_hub_processes(make_hub: HubFactory) -> None:
    hub_a = await make_hub(SMSNODES_DEVICE_ACK_TIMEOUT="60")
    hub_b = await make_hub(SMSNODES_DEVICE_ACK_TIMEOUT="60")
    account = await account_with_phones(hub_a, 2)
    first = await Phone.login(hub_a, "acme-1", acking=False)
    ids = await hold_two_on(hub_a, account, first)
    second = await Phone.login(hub_b, "acme-2")
    started = time.monotonic()
    await first.drop()
    try:
        await until(lambda: sorted(second.ids) == sorted(ids), timeout=1.0,
                    message="not handed over to the other process's phone within a second")
        assert time.monotonic() - started < 1.0
        back = await Phone.login(hub_b, "acme-1", acking=False)
        try:
            await until(lambda: sorted(back.cancelled) == sorted(ids))
            assert back.received == []
        finally:
            await back.close()
    finally:
        await second.close()


async def test_a_phone_back_before_anyone_took_them_takes_its_messages_back(
    make_hub: HubFactory, pool: asyncpg.Pool,
) -> None:
    hub = await make_hub(SMSNODES_DEVICE_ACK_TIMEOUT="60")
    account = await account_with_phones(hub, 1)
    first = await Phone.login(hub, "acme-1", acking=False)
    ids = await hold_two_on(hub, account, first)
    await first.drop()
    await until(lambda: pool.fetchval(
        "SELECT count(*) = 2 FROM messages WHERE device_id IS NULL AND state = 'queued'"))
    back = await Phone.login(hub, "acme-1")
    try:
        await until(lambda: sorted(back.ids) == sorted(ids))
        assert {f["attempt"] for f in back.received} == {1} and back.cancelled == []
        assert await pool.fetchval("SELECT count(*) FROM pending_cancels") == 0
    finally:
        await back.close()


async def test_a_transient_failure_is_retried_on_another_phone(make_hub: HubFactory) -> None:
    hub = await make_hub(SMSNODES_DELIVERY_RETRY_BACKOFF="0.05",
                         SMSNODES_DELIVERY_RETRY_BACKOFF_MAX="0.1")
    account = await account_with_phones(hub, 2)
    one, two = [await Phone.login(hub, name) for name in account.phones]
    try:
        answer = await send_routed(hub, account, message="retry me")
        first, other = (one, two) if answer["device"] == "acme-1" else (two, one)
        await until(lambda: len(first.received) == 1)
        await first.report(answer["messageId"], "failed", error="RESULT_ERROR_NO_SERVICE")
        await until(lambda: len(other.received) == 1, timeout=5)
        assert (other.received[0]["id"], other.received[0]["attempt"]) == (
            answer["messageId"], 2)
        await other.report(answer["messageId"], "sent", attempt=2)
        message = await until(lambda: _sent(hub, account, answer["messageId"]))
        assert [e["device"] for e in message["events"] if e["status"] == "dispatched"] == [
            first.name, other.name]
    finally:
        await one.close()
        await two.close()


async def _sent(hub: TestClient, account: object, message_id: int) -> object:
    message = await get(hub, f"/api/messages/{message_id}", account.bearer)  # type: ignore[attr-defined]
    return message if message["status"] == "sent" else None


async def test_messages_of_a_dead_process_go_to_a_phone_of_a_live_one(
    make_hub: HubFactory, pool: asyncpg.Pool,
) -> None:
    hub_a = await make_hub(SMSNODES_DEVICE_ACK_TIMEOUT="0.2")
    account = await account_with_phones(hub_a, 2)
    first = await Phone.login(hub_a, "acme-1", acking=False)
    ids = await hold_two_on(hub_a, account, first)
    # Process A vanishes without cleaning up: a stale heartbeat, its sockets forgotten.
    await pool.execute("UPDATE hub_processes SET heartbeat_at = now() - interval '1 hour'")
    hub_a.app[HUB].connections.clear()
    await first.drop()
    hub_b = await make_hub(SMSNODES_DEVICE_ACK_TIMEOUT="0.2")
    second = await Phone.login(hub_b, "acme-2")
    try:
        await asyncio.sleep(0.3)  # past the ack timeout: the grace before a sweep
        await hub_b.app[HUB]._sweep_orphans()
        await until(lambda: sorted(second.ids) == sorted(ids), timeout=3)
    finally:
        await second.close()


async def test_removing_a_phone_hands_its_routed_messages_to_another(hub: TestClient,
                                                                    pool: asyncpg.Pool) -> None:
    account = await account_with_phones(hub, 2)
    first = await Phone.login(hub, "acme-1", acking=False)
    ids = await hold_two_on(hub, account, first)
    pinned = await send_routed(hub, account, device="acme-1", message="pinned")
    await until(lambda: len(first.received) == 3)
    second = await Phone.login(hub, "acme-2")
    try:
        doomed = await pool.fetchval("SELECT id FROM devices WHERE username = 'acme-1'")
        resp = await hub.delete(f"/api/devices/{doomed}", headers=basic("acme"))
        assert resp.status == 200
        await until(lambda: sorted(second.ids) == sorted(ids), timeout=2)
        gone = await get(hub, f"/api/messages/{pinned['messageId']}", account.bearer)
        assert gone["status"] == "cancelled"
    finally:
        await first.close()
        await second.close()
