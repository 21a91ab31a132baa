"""The queue's set-based insert (messaging/messages.py): several sends in one statement,
each with its own recipients, each answered for itself."""

from __future__ import annotations

import dataclasses

from smsnodes_hub.appkeys import AUTH
from smsnodes_hub.messaging import messages
from tests.support import NUMBER, PASSWORD, add_device, basic

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
