"""The dashboard's accounts: each account's phones with online state, queue, in flight, sent
today, battery and signal; the pool's depth; the quota's use as bars. Metadata only."""

from __future__ import annotations

import asyncpg
from aiohttp.test_utils import TestClient

from smsnodes_hub.messaging import quotas
from tests.accounts_support import Phone, account_with_phones, send_routed
from tests.dashboard_support import element, logged_in
from tests.support import NUMBER, basic, until


async def test_an_accounts_page_shows_its_phones_pool_and_quota(hub: TestClient,
                                                                pool: asyncpg.Pool) -> None:
    account = await account_with_phones(hub, 2)
    account_id = await pool.fetchval("SELECT id FROM accounts WHERE name = 'acme'")
    await quotas.set_limits(pool, account_id, 100, None)
    # Two routed sends wait in the pool (no phone online), then acme-1 comes, holds one
    # un-acked, reports the other sent, and tells its battery and signal.
    for n in range(2):
        await send_routed(hub, account, message=f"pooled {n}")
    waiting = await send_routed(hub, account, device="acme-2", message="for two")
    await logged_in(hub)
    listing = await (await hub.get("/dashboard/accounts")).text()
    row = element(listing, f"account-{account_id}")
    assert ">acme<" in row and 'data-label="Phones">2<' in row
    assert 'data-label="Online">0<' in row and 'data-label="In the pool">2<' in row
    phone = await Phone.login(hub, "acme-1", acking=False)
    try:
        await until(lambda: len(phone.received) == 2)
        await phone.report(phone.received[0]["id"], "sent")
        await phone.raw.send({"type": "heartbeat", "battery": 64, "charging": False,
                              "signal": 3})
        await until(lambda: pool.fetchval("SELECT battery = 64 FROM devices "
                                          "WHERE username = 'acme-1'"))
        await send_routed(hub, account, message="pooled again")
        await until(lambda: len(phone.received) == 3)
        listing = await (await hub.get("/dashboard/accounts")).text()
        row = element(listing, f"account-{account_id}")
        assert 'data-label="Online">1<' in row and 'data-label="In the pool">0<' in row
        page = await (await hub.get(f"/dashboard/accounts/{account_id}")).text()
        fragment = await (await hub.get(f"/dashboard/fragments/accounts/{account_id}")).text()
        for html in (page, fragment):
            one = element(html, f"phone-{phone_id(html, 'acme-1')}")
            assert 'data-presence="online"' in one
            assert 'data-label="Queued">0<' in one
            assert 'data-label="In flight">2<' in one and 'data-label="Sent today">1<' in one
            assert "64 %" in one and "3/4" in one
            two = element(html, f"phone-{phone_id(html, 'acme-2')}")
            assert 'data-presence="offline"' in two and 'data-label="Queued">1<' in two
            assert '<meter class="quota" min="0" max="100" value="4"' in html
            assert "4 of 100 SMS" in html and "no limit" in html  # daily, monthly
            assert "waiting for a phone with room" in html
            # Metadata only: no text, no number.
            assert "pooled" not in html and NUMBER not in html and "for two" not in html
        assert waiting["device"] == "acme-2"
        device_page = await (await hub.get(f"/dashboard/devices/{phone_id(page, 'acme-1')}"))\
            .text()
        assert f'href="/dashboard/accounts/{account_id}"' in device_page
        resp = await hub.get("/dashboard/accounts/99999")
        assert resp.status == 404
    finally:
        await phone.close()
    assert (await hub.get("/api/quota", headers=basic("acme"))).status == 200


def phone_id(html: str, name: str) -> int:
    marker = 'id="phone-link-'
    for piece in html.split(marker)[1:]:
        number, _, rest = piece.partition('"')
        if rest.lstrip(">").startswith(name + "<"):
            return int(number)
    raise AssertionError(f"no phone {name} on the page")
