"""The queue's set-based insert (messaging/messages.py): several sends in one statement,
each with its own recipients, each answered for itself."""

from __future__ import annotations

import dataclasses
import uuid

from smsnodes_hub.appkeys import AUTH
from smsnodes_hub.messaging import messages
from tests.support import NUMBER, PASSWORD, add_device, basic, send

OTHER = "+1987654321"


async def test_one_statement_stores_each_send_with_its_own_recipients(hub, pool):
    await add_device(hub, "shop-phone-1")
    principal = await hub.app[AUTH].login(pool, "shop-phone-1", PASSWORD)
    assert principal is not None

    def new(text: str, numbers: list[str]) -> messages.NewMessage:
        return messages.new_message(principal, priority=2, text=text, numbers=numbers,
                                    dispatch_to=None, notify=False, local_online=False,
                                    stale_seconds=15)

    stale = dataclasses.replace(new("stale", [NUMBER]),
                                credential_epoch=principal.credential_epoch + 1)
    async with pool.acquire() as conn, conn.transaction():
        results = await messages.insert_all(conn, [
            new("one", [NUMBER]), stale, new("two", [OTHER, NUMBER, OTHER])])

    assert results[1].id is None  # the credentials changed since they were cached
    first, third = results[0].id, results[2].id
    assert first is not None and third is not None and first != third
    assert not results[0].device_online

    async def shown(message_id: int) -> tuple[str, list[str]]:
        resp = await hub.get(f"/api/messages/{message_id}", headers=basic())
        body = await resp.json()
        assert resp.status == 200, body
        return body["message"], [r["to"] for r in body["recipients"]]

    assert await shown(first) == ("one", [NUMBER])
    assert await shown(third) == ("two", [OTHER, NUMBER, OTHER])
    assert await pool.fetchval("SELECT count(*) FROM messages") == 2


async def test_one_statement_claims_for_several_phones_each_its_own_in_priority_order(
        hub, pool):
    one = await add_device(hub, "shop-phone-1")
    two = await add_device(hub, "shop-phone-2")
    # The second phone's oldest top-priority message has two recipients.
    big = (await send(hub, "shop-phone-2", priority=5, numbers=[NUMBER, OTHER]))["messageId"]
    ids: dict[str, list[int]] = {"shop-phone-1": [], "shop-phone-2": []}
    for name in ids:
        for priority in (1, 5, 3):
            ids[name].append((await send(hub, name, priority=priority))["messageId"])
    first, second = uuid.uuid4(), uuid.uuid4()

    async with pool.acquire() as conn:
        claimed = await messages.claim_all(conn, [
            messages.Claim(one, first, limit=2),
            # Paced to one SMS: the head (two recipients) must wait, nothing is claimed.
            messages.Claim(two, second, limit=5, max_recipients=1),
        ])
        assert [r["id"] for r in claimed[0]] == [ids["shop-phone-1"][1], ids["shop-phone-1"][2]]
        assert claimed[1] == []
        [rest] = await messages.claim_all(conn, [messages.Claim(two, second, limit=5)])
    p2 = ids["shop-phone-2"]
    assert [r["id"] for r in rest] == [big, p2[1], p2[2], p2[0]]
    states = dict(await pool.fetch("SELECT id, dispatched_to FROM messages "
                                   "WHERE state = 'dispatched'"))
    assert states == {**{i: first for i in ids["shop-phone-1"][1:]},
                      **{i: second for i in [*p2, big]}}
