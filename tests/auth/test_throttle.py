"""Login throttling (auth/throttle.py, sql/013): a guesser slows only guesses, every hub
process on the database counts the same failures, X-Forwarded-For counts only from trusted
proxies, and logins over the device socket are counted like those over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient

from smsnodes_hub.appkeys import LOGIN_THROTTLE
from smsnodes_hub.auth import throttle
from smsnodes_hub.auth.addresses import TrustedProxies
from smsnodes_hub.auth.throttle import DEVICE, Limits, LoginThrottle, Throttled
from tests.support import (
    PASSWORD,
    HubFactory,
    add_device,
    basic,
    from_address,
    until,
    ws_url,
)
from tests.wsclient import RawPhone

WRONG = "not the password at all"
VICTIM, OTHER = "phone-victim", "phone-other"
SEND = {"phoneNumbers": ["+1234567890"], "message": "hello"}


async def status_of(resp: Any) -> int:
    await resp.read()
    return int(resp.status)


async def send(client: Any, username: str, password: str,
               headers: dict[str, str] | None = None) -> int:
    """A send-sms with the password in the body, as the SMS Nodes seed does it."""
    resp = await client.post("/api/send-sms", headers=headers, data=orjson.dumps(
        {**SEND, "deviceUsername": username, "password": password}))
    return await status_of(resp)


async def ws_login(client: TestClient, frame: dict[str, Any], *, local_addr: str | None = None,
                   headers: dict[str, str] | None = None) -> tuple[dict[str, Any], int | None]:
    """One auth frame: the hub's answer and, when it refused, its close code."""
    phone = await RawPhone.connect(ws_url(client), local_addr=local_addr, headers=headers)
    try:
        await phone.send({"type": "auth", **frame})
        reply = await phone.recv()
        code = None if reply["type"] == "auth_ok" else await phone.closed_with()
        return reply, code
    finally:
        await phone.close()


async def test_200_wrong_passwords_refuse_only_the_guesses(hub: TestClient) -> None:
    await add_device(hub, VICTIM)
    await add_device(hub, OTHER)
    # The victim's API token and phone session token, issued before the attack.
    created = await hub.post("/api/tokens", headers=basic(VICTIM), json={"name": "ci"})
    api_token = (await created.json())["token"]
    session_token = (await ws_login(hub, {"username": VICTIM, "password": PASSWORD}))[0]["token"]
    assert await status_of(await hub.get("/api/device", headers=basic(OTHER))) == 200  # cached

    answers = []
    for batch in range(10):
        answers += await asyncio.gather(*(send(hub, VICTIM, f"{WRONG} {batch}-{i}")
                                          for i in range(20)))
    assert set(answers) <= {401, 429} and answers.count(401) <= 5 and answers[-1] == 429

    # From the guesser's own address, everything but the guesses still works:
    assert await status_of(await hub.get("/api/device", headers=basic(OTHER))) == 200
    assert await send(hub, OTHER, PASSWORD) == 200
    assert await status_of(await hub.get(
        "/api/device", headers={"Authorization": f"Bearer {api_token}"})) == 200
    reply, _ = await ws_login(hub, {"token": session_token})
    assert reply["type"] == "auth_ok"
    reply, _ = await ws_login(hub, {"username": OTHER, "password": PASSWORD})
    assert reply["type"] == "auth_ok"
    # ...and the owner's right password from another address.
    async with from_address(hub, "127.0.0.2") as owner:
        assert await send(owner, VICTIM, PASSWORD) == 200
        assert await status_of(await owner.get("/api/device", headers=basic(VICTIM))) == 200
    reply, _ = await ws_login(hub, {"username": VICTIM, "password": PASSWORD},
                              local_addr="127.0.0.2")
    assert reply["type"] == "auth_ok"
    # The guesser's address may not try this username, not even with the right password.
    assert await send(hub, VICTIM, PASSWORD) == 429
    reply, code = await ws_login(hub, {"username": VICTIM, "password": PASSWORD})
    assert (reply["error"], code) == ("Too many attempts", 4429) and reply["retryAfter"] >= 1


async def test_the_username_limit_refuses_only_addresses_that_failed_for_it(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub(SMSNODES_SECURITY_LOGIN_MAX_FAILURES="3",
                         SMSNODES_SECURITY_LOGIN_MAX_FAILURES_PER_USERNAME="4")
    await add_device(hub, VICTIM)
    async with from_address(hub, "127.0.0.2") as second, \
            from_address(hub, "127.0.0.3") as clean:
        for client in (hub, hub, second, second):  # 2 + 2: no address at its own limit
            assert await send(client, VICTIM, WRONG) == 401
        # The username has failed 4 times: refused for the addresses that failed for it...
        assert await send(hub, VICTIM, PASSWORD) == 429
        assert await send(second, VICTIM, PASSWORD) == 429
        # ...not for a clean one, and the owner's success does not reset what was spent.
        assert await send(clean, VICTIM, PASSWORD) == 200
        assert await send(hub, VICTIM, PASSWORD) == 429


async def test_a_right_password_forgets_that_address_failures(make_hub: HubFactory) -> None:
    hub = await make_hub(SMSNODES_SECURITY_LOGIN_MAX_FAILURES="3")
    await add_device(hub, VICTIM)
    assert [await send(hub, VICTIM, WRONG) for _ in range(2)] == [401, 401]
    assert await send(hub, VICTIM, PASSWORD) == 200
    assert [await send(hub, VICTIM, WRONG) for _ in range(4)] == [401, 401, 401, 429]


async def test_two_hub_processes_count_the_same_failures(make_hub: HubFactory) -> None:
    settings = {"SMSNODES_SECURITY_LOGIN_MAX_FAILURES": "4"}
    first, second = await make_hub(**settings), await make_hub(**settings)
    await add_device(first, VICTIM)
    # The right password, cached by the second process before the attack.
    assert await status_of(await second.get("/api/device", headers=basic(VICTIM))) == 200
    for client in (first, second, first, second):
        assert await send(client, VICTIM, WRONG) == 401
    for client in (first, second):  # 4 failures in all: both refuse the next guess
        assert await send(client, VICTIM, WRONG) == 429
    # The second process heard of the failures, so its cached right password is refused too
    # (a cache hit must not tell a right guess from a wrong one).
    await until(lambda: second.app[LOGIN_THROTTLE].suspect(DEVICE, VICTIM))
    assert await status_of(await second.get("/api/device", headers=basic(VICTIM))) == 429
    # A process started after the failures knows them too.
    third = await make_hub(**settings)
    async with from_address(third, "127.0.0.2") as owner:  # caches the right password there
        assert await status_of(await owner.get("/api/device", headers=basic(VICTIM))) == 200
    await until(lambda: third.app[LOGIN_THROTTLE].suspect(DEVICE, VICTIM))
    assert await status_of(await third.get("/api/device", headers=basic(VICTIM))) == 429


async def test_logins_over_the_socket_are_counted_nul_bytes_included(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub(SMSNODES_SECURITY_LOGIN_MAX_FAILURES="3")
    await add_device(hub, VICTIM)
    nul_name = {"username": "\x00", "password": PASSWORD}
    codes = [(await ws_login(hub, nul_name))[1] for _ in range(4)]
    assert codes == [4401, 4401, 4401, 4429]
    # A NUL in the password of a real username counts for that username, over HTTP as well.
    nul_password = {"username": VICTIM, "password": f"{PASSWORD}\x00"}
    assert [(await ws_login(hub, nul_password))[1] for _ in range(2)] == [4401, 4401]
    assert await send(hub, VICTIM, WRONG) == 401
    assert (await ws_login(hub, {"username": VICTIM, "password": PASSWORD}))[1] == 4429
    reply, _ = await ws_login(hub, {"username": VICTIM, "password": PASSWORD},
                              local_addr="127.0.0.2")
    assert reply["type"] == "auth_ok"


async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    make_hub: HubFactory, pool: asyncpg.Pool,
) -> None:
    settings = {"SMSNODES_SECURITY_LOGIN_MAX_FAILURES": "2"}
    # No trusted proxy: the header changes nothing, a guesser cannot dodge its lockout.
    direct = await make_hub(**settings)
    await add_device(direct, VICTIM)
    answers = [await send(direct, VICTIM, WRONG, {"X-Forwarded-For": f"198.51.100.{i}"})
               for i in range(3)]
    assert answers == [401, 401, 429]

    proxied = await make_hub(SMSNODES_SERVER_TRUSTED_PROXIES="127.0.0.1, 10.0.0.0/8",
                             **settings)
    client, other = {"X-Forwarded-For": "198.51.100.7"}, {"X-Forwarded-For": "198.51.100.8"}
    assert [await send(proxied, VICTIM, WRONG, client) for _ in range(3)] == [401, 401, 429]
    # Another client behind the same proxy gets in; the first stays refused, whatever it
    # prepends itself, and through a second trusted proxy as well.
    assert await send(proxied, VICTIM, PASSWORD, other) == 200
    for spoofed in ("203.0.113.9, 198.51.100.7", "198.51.100.7, 10.1.2.3"):
        assert await send(proxied, VICTIM, PASSWORD, {"X-Forwarded-For": spoofed}) == 429
    # A peer that is not a trusted proxy is counted as itself.
    async with from_address(proxied, "127.0.0.2") as untrusted:
        assert await send(untrusted, VICTIM, PASSWORD, client) == 200
    # Phones behind the proxy: the socket's session shows, and is counted as, the client.
    phone = await RawPhone.connect(ws_url(proxied), headers=other)
    await phone.send({"type": "auth", "username": VICTIM, "password": PASSWORD})
    assert (await phone.recv())["type"] == "auth_ok"
    assert await until(lambda: pool.fetchval("SELECT remote FROM device_sessions")) == \
        "198.51.100.8"
    await phone.close()
    assert (await ws_login(proxied, {"username": VICTIM, "password": PASSWORD},
                           headers=client))[1] == 4429


def test_the_client_of_a_forwarded_request() -> None:
    proxies = TrustedProxies(["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"])
    assert TrustedProxies().client("127.0.0.1", ["198.51.100.7"]) == "127.0.0.1"
    assert proxies.client("127.0.0.1", []) == "127.0.0.1"
    assert proxies.client("127.0.0.1", ["198.51.100.7"]) == "198.51.100.7"
    assert proxies.client("::ffff:127.0.0.1", ["198.51.100.7"]) == "198.51.100.7"
    assert proxies.client("127.0.0.1", ["203.0.113.1, 198.51.100.7", "10.0.0.2"]) == \
        "198.51.100.7"
    assert proxies.client("192.0.2.1", ["198.51.100.7"]) == "192.0.2.1"  # not trusted
    assert proxies.client("127.0.0.1", ["10.0.0.3, 10.0.0.2"]) == "10.0.0.3"  # all proxies
    assert proxies.client("127.0.0.1", ["[2001:db9::1]:443"]) == "2001:db9::1"
    assert proxies.client("127.0.0.1", ["198.51.100.7:5555"]) == "198.51.100.7"
    # Garbage where an address should be: the proxy that passed it on, never the garbage.
    assert proxies.client("127.0.0.1", ["198.51.100.7, unknown"]) == "127.0.0.1"
    assert proxies.client("127.0.0.1", ["junk, 10.0.0.2"]) == "10.0.0.2"
    assert proxies.client(None, []) == "unknown"


async def test_an_ipv6_network_is_one_client(pool: asyncpg.Pool) -> None:
    # Loopback cannot show it over HTTP: a host owns its whole /64, so it is counted once.
    guard = LoginThrottle(Limits(per_address=3, per_username=100, lockout=60))
    for host in ("2001:db8:5:6::1", "2001:db8:5:6::2", "2001:db8:5:6:ffff::3"):
        assert (await guard.verdict(pool, DEVICE, VICTIM, host)).wait is None
        await guard.failure(pool, DEVICE, VICTIM, host)
    assert (await guard.verdict(pool, DEVICE, VICTIM, "2001:db8:5:6::abcd")).wait is not None
    assert (await guard.verdict(pool, DEVICE, VICTIM, "2001:db8:5:7::1")).wait is None
    assert (await guard.verdict(pool, DEVICE, VICTIM, "::ffff:192.0.2.1")).wait is None


async def test_lockouts_double_and_old_records_are_deleted(pool: asyncpg.Pool) -> None:
    guard = LoginThrottle(Limits(per_address=2, per_username=100, lockout=60))
    address = "192.0.2.1"
    for _ in range(2):
        await guard.failure(pool, DEVICE, VICTIM, address)
    first = (await guard.verdict(pool, DEVICE, VICTIM, address)).wait
    assert first is not None and 55 <= first <= 60
    with pytest.raises(Throttled):  # refused meanwhile: not counted
        await guard.failure(pool, DEVICE, VICTIM, address)
    # The lockout over, the next failure locks twice as long.
    await pool.execute("UPDATE login_failures SET locked_until = now() WHERE address = $1",
                       address)
    await guard.failure(pool, DEVICE, VICTIM, address)
    second = (await guard.verdict(pool, DEVICE, VICTIM, address)).wait
    assert second is not None and 115 <= second <= 120
    # Past its time a record counts as absent at once, and is deleted by the upkeep.
    await pool.execute("UPDATE login_failures SET forget_at = now() - interval '1 second'")
    assert await guard.verdict(pool, DEVICE, VICTIM, address) == throttle.Verdict(None, 0)
    await guard.prune(pool)
    assert await pool.fetchval("SELECT count(*) FROM login_failures") == 0
