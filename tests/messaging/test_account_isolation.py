"""A phone of account A never receives, acks or reports on account B's messages, however
they are routed, pooled or failed over; nor does B's account see A's."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp.test_utils import TestClient

from tests.accounts_support import Phone, account_with_phones, send_routed
from tests.support import NUMBER, get, until


async def test_phones_of_one_account_never_touch_another_accounts_messages(
    hub: TestClient, pool: asyncpg.Pool,
) -> None:
    acme = await account_with_phones(hub, 2, name="acme")
    other = await account_with_phones(hub, 1, name="other")
    stranger = await Phone.login(hub, "other-1", acking=False)
    try:
        # Acme has no phone online: its routed sends wait in its pool, which is not other's.
        pooled = [await send_routed(hub, acme, message=f"acme {n}") for n in range(3)]
        assert all(a["device"] is None for a in pooled)
        await asyncio.sleep(0.5)
        assert stranger.received == []
        # The stranger tries to ack and report on them anyway: unknown to it.
        for n, answer in enumerate(pooled):
            await stranger.raw.send({"type": "ack", "id": answer["messageId"],
                                     "ref": f"a{n}"})
            await stranger.raw.send({"type": "status", "ref": f"s{n}", "id":
                                     answer["messageId"], "to": NUMBER, "status": "sent"})
        await until(lambda: pool.fetchval(
            "SELECT count(*) = 3 FROM messages WHERE device_id IS NULL AND state = 'queued'"))
        # Acme's phone comes and takes them all; the stranger still has none.
        mine = await Phone.login(hub, "acme-1", acking=False)
        try:
            await until(lambda: len(mine.received) == 3)
            # It drops; failover keeps them in acme (the pool, then acme-2), never other's.
            await mine.drop()
            second = await Phone.login(hub, "acme-2")
            try:
                await until(lambda: len(second.received) == 3, timeout=3)
            finally:
                await second.close()
        finally:
            await mine.close()
        assert stranger.received == []
        # And the other account reads none of acme's messages.
        for answer in pooled:
            await get(hub, f"/api/messages/{answer['messageId']}", other.bearer, status=404)
            assert (await get(hub, f"/api/messages/{answer['messageId']}",
                              acme.bearer))["status"] == "accepted"
        states = await pool.fetch("SELECT DISTINCT r.state FROM recipients r")
        assert [r["state"] for r in states] == ["pending"]  # the stranger's reports did nothing
    finally:
        await stranger.close()
