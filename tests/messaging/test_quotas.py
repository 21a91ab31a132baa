"""Quotas (ACCOUNTS.md "Quotas"): counted in SMS (recipients x segments) in the send's own
statement, exact across hub processes and racing sends, `remainingQuota` in answers, 429
with Retry-After and nothing stored, SMS given back by cancelled or expired unsent
recipients, GET /api/quota and `account quota`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from smsnodes_hub.appkeys import AUTH
from smsnodes_hub.messaging import messages, quotas
from tests.accounts_support import account_with_phones, send_routed, set_quota
from tests.cli.test_cli import Cli, cli  # noqa: F401 - the fixture
from tests.support import NUMBER, PASSWORD, HubFactory, add_device, basic, get, until

OTHER = "+1987654321"


async def post(hub: TestClient, **fields: Any) -> tuple[int, Any, Any]:
    resp = await hub.post("/api/send-sms", json={
        "deviceUsername": "shop-phone-1", "password": PASSWORD, "phoneNumbers": [NUMBER],
        "message": "counted", **fields})
    return resp.status, await resp.json(), resp.headers


def seconds_to_midnight() -> float:
    now = datetime.now(UTC)
    return (quotas.day_reset(now) - now).total_seconds()


async def test_twenty_racing_sends_over_two_processes_never_overshoot(
    make_hub: HubFactory, pool: asyncpg.Pool,
) -> None:
    hub_a = await make_hub()
    hub_b = await make_hub()
    await add_device(hub_a, "shop-phone-1")
    await set_quota(pool, "shop-phone-1", 10)
    results = await asyncio.gather(*(post(hub_a if n % 2 else hub_b, message=f"race {n}")
                                     for n in range(20)))
    accepted = [body for status, body, _ in results if status == 200]
    refused = [(body, headers) for status, body, headers in results if status == 429]
    assert len(accepted) == 10 and len(refused) == 10, [r[0] for r in results]
    assert sorted(b["remainingQuota"] for b in accepted) == list(range(10))
    for body, headers in refused:
        assert body == {"error": "Quota exceeded", "code": "quota_exceeded"}
        assert abs(int(headers["Retry-After"]) - seconds_to_midnight()) < 5
    assert await pool.fetchval("SELECT count(*) FROM messages") == 10
    assert await pool.fetchval("SELECT day_used FROM quotas") == 10


async def test_an_sms_is_a_recipient_times_the_segments(hub: TestClient,
                                                        pool: asyncpg.Pool) -> None:
    await add_device(hub, "shop-phone-1")
    await set_quota(pool, "shop-phone-1", 5)
    long_text = "x" * 200  # two GSM-7 segments
    status, body, _ = await post(hub, phoneNumbers=[NUMBER, OTHER], message=long_text)
    assert status == 200 and body["segments"] == 4 and body["remainingQuota"] == 1, body
    status, body, _ = await post(hub, message=long_text)  # 2 SMS, 1 left: refused whole
    assert status == 429, body
    status, body, _ = await post(hub)
    assert (status, body["remainingQuota"]) == (200, 0)
    assert await pool.fetchval("SELECT count(*) FROM messages") == 2


async def test_a_monthly_quota_resets_on_the_first_of_the_month(hub: TestClient,
                                                                pool: asyncpg.Pool) -> None:
    await add_device(hub, "shop-phone-1")
    await set_quota(pool, "shop-phone-1", None, 2)
    assert [(await post(hub))[1]["remainingQuota"] for _ in range(2)] == [1, 0]
    status, body, headers = await post(hub)
    assert status == 429, body
    now = datetime.now(UTC)
    assert abs(int(headers["Retry-After"])
               - (quotas.month_reset(now) - now).total_seconds()) < 5
    # The smaller of the two is what remains: a roomy day in a month nearly used.
    await set_quota(pool, "shop-phone-1", 10, 3)
    status, body, _ = await post(hub)
    assert (status, body["remainingQuota"]) == (200, 0)
    await set_quota(pool, "shop-phone-1", 5, 100)
    status, body, _ = await post(hub)
    assert (status, body["remainingQuota"]) == (200, 1)


async def test_cancelled_and_expired_unsent_recipients_give_their_sms_back(
    make_hub: HubFactory, pool: asyncpg.Pool,
) -> None:
    hub = await make_hub()
    await add_device(hub, "shop-phone-1")
    await set_quota(pool, "shop-phone-1", 3)
    _, first, _ = await post(hub, phoneNumbers=[NUMBER, OTHER])
    _, second, _ = await post(hub, ttl=1)
    assert (await post(hub))[0] == 429
    resp = await hub.delete(f"/api/messages/{first['messageId']}", headers=basic())
    assert resp.status == 200
    assert (await get(hub, "/api/quota"))["daily"]["used"] == 1
    await until(lambda: _status(hub, second["messageId"], "expired"), timeout=5)
    assert (await get(hub, "/api/quota"))["daily"]["used"] == 0
    status, body, _ = await post(hub, phoneNumbers=[NUMBER, OTHER])
    assert (status, body["remainingQuota"]) == (200, 1)


async def _status(hub: TestClient, message_id: int, status: str) -> bool:
    return (await get(hub, f"/api/messages/{message_id}"))["status"] == status


async def test_routed_sends_count_too_and_get_api_quota_says_what_is_left(
    hub: TestClient, pool: asyncpg.Pool,
) -> None:
    account = await account_with_phones(hub, 2)
    assert await get(hub, "/api/quota", account.bearer) == {"daily": None, "monthly": None}
    plain = await send_routed(hub, account)
    assert "remainingQuota" not in plain  # no quota, no field (the seed's answer as it was)
    await set_quota(pool, "acme", 3, 100)  # counts what was sent today already
    quota = await get(hub, "/api/quota", account.bearer)
    assert quota["daily"]["limit"] == 3 and quota["daily"]["used"] == 1
    assert quota["daily"]["remaining"] == 2 and quota["monthly"]["used"] == 1
    assert datetime.fromisoformat(quota["daily"]["resetsAt"].replace("Z", "+00:00")) == \
        quotas.day_reset(datetime.now(UTC))
    assert (await send_routed(hub, account))["remainingQuota"] == 1
    assert (await send_routed(hub, account, device="acme-2"))["remainingQuota"] == 0
    answer = await send_routed(hub, account, status=429)
    assert answer["error"] == "Quota exceeded"
    # Every credential of the account shares the one quota.
    resp = await hub.post("/api/send-sms", headers=basic("acme-1"),
                          json={"phoneNumbers": [NUMBER], "message": "x"})
    assert resp.status == 429
    assert (await get(hub, "/api/quota", basic("acme-1")))["daily"]["remaining"] == 0


async def test_account_quota_on_the_command_line(cli: Cli, hub: TestClient,  # noqa: F811
                                                 pool: asyncpg.Pool) -> None:
    await add_device(pool, "shop-phone-1")
    run = await cli("account", "quota", "shop-phone-1", "--daily", "2", "--monthly", "50")
    assert run.code == 0, run
    assert "daily: 0 of 2 used, 2 left" in run.out and "monthly: 0 of 50 used" in run.out
    assert (await post(hub))[1]["remainingQuota"] == 1
    shown = await cli("account", "quota", "shop-phone-1")
    assert "daily: 1 of 2 used, 1 left" in shown.out, shown
    off = await cli("account", "quota", "shop-phone-1", "--daily", "off")
    assert "daily: no limit" in off.out and "monthly: 1 of 50 used" in off.out, off
    both_off = await cli("account", "quota", "shop-phone-1", "--monthly", "off")
    assert "monthly: no limit" in both_off.out
    assert await pool.fetchval("SELECT count(*) FROM quotas") == 0
    assert "remainingQuota" not in (await post(hub))[1]
    for bad in ("0x", "-1", "1.5", "100000001"):
        run = await cli("account", "quota", "shop-phone-1", "--daily", bad)
        assert "--daily must be a whole number" in run.one_error_line()
    assert "no account named" in (await cli("account", "quota", "ghost")).one_error_line()


async def test_in_one_batch_a_send_that_does_not_fit_leaves_room_for_a_smaller_one(
    hub: TestClient, pool: asyncpg.Pool,
) -> None:
    # Sends that arrive together are stored by one statement (the sends lane): they are
    # judged as if they came one by one, so the 5 that does not fit leaves the 2 after it.
    await add_device(hub, "shop-phone-1")
    await set_quota(pool, "shop-phone-1", 10)
    principal = await hub.app[AUTH].login(pool, "shop-phone-1", PASSWORD)
    assert principal is not None

    def new(recipients: int) -> messages.NewMessage:
        return messages.new_message(
            principal, priority=2, text="counted", numbers=[NUMBER] * recipients,
            dispatch_to=None, notify=False, local_online=False, stale_seconds=15)

    async with pool.acquire() as conn:
        results = await messages.insert_all(conn, [new(8), new(5), new(2), new(1)])
    assert [r.id is not None for r in results] == [True, False, True, False]
    assert [r.over_quota for r in results] == [None, "day", None, "day"]
    assert [r.remaining_quota for r in results] == [2, 2, 0, 0]
    assert await pool.fetchval("SELECT day_used FROM quotas") == 10
    assert await pool.fetchval("SELECT sum(recipient_count) FROM messages") == 10
