"""Accounts that own phones (ACCOUNTS.md "Model", "Keys", "Sending"): one name space, Basic
credentials naming the phone first and the account otherwise, account tokens beside pinned
ones, and each password wrapping the same data key."""

from __future__ import annotations

import asyncio
import re

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from smsnodes_hub.appkeys import AUTH
from smsnodes_hub.auth import accounts, owners
from smsnodes_hub.auth.accounts import AccountError
from tests.accounts_support import account_with_phones, credential_rows
from tests.support import (
    PASSWORD,
    add_account,
    add_device,
    add_phone,
    basic,
    get,
    send,
    until,
    ws_url,
)
from tests.wsclient import RawPhone

OTHER_PASSWORD = "another good password"


async def test_names_are_one_space_across_accounts_and_phones(hub: TestClient) -> None:
    await add_account(hub, "acme")
    await add_phone(hub, "acme", "acme-1")
    await add_device(hub, "solo")  # an account and its first phone, both named solo
    for taken in ("acme", "acme-1", "solo"):
        with pytest.raises(AccountError, match="already exists"):
            await add_account(hub, taken)
        with pytest.raises(AccountError, match="already exists"):
            await add_device(hub, taken)
        with pytest.raises(AccountError, match="already exists"):
            await add_phone(hub, "acme", taken)
    # Nor may a phone of one account take another account's name.
    with pytest.raises(AccountError, match="already exists"):
        await add_phone(hub, "solo", "acme")


async def test_two_transactions_taking_one_name_never_both_win(hub: TestClient,
                                                               pool: asyncpg.Pool) -> None:
    """The account `race` and a phone `race` of another account, created at once: the
    second waits for the first to commit, then is refused."""
    acme = await add_account(hub, "acme")
    credential = (b"\x00", 8, 1, 1, b"\x00", b"\x00")  # never logs in: not needed here
    async with pool.acquire() as first, pool.acquire() as second:
        tx = first.transaction()
        await tx.start()
        await first.execute(
            "INSERT INTO accounts (name, kdf_salt, kdf_memory_kib, kdf_iterations, kdf_lanes,"
            " verifier, wrapped_key) VALUES ('race', $1, $2, $3, $4, $5, $6)", *credential)
        racing = asyncio.create_task(second.execute(
            "INSERT INTO devices (account_id, username, kdf_salt, kdf_memory_kib,"
            " kdf_iterations, kdf_lanes, verifier, wrapped_key)"
            " VALUES ($1, 'race', $2, $3, $4, $5, $6, $7)", acme, *credential))
        await asyncio.sleep(0.3)
        assert not racing.done()  # it waits for the name
        await tx.commit()
        with pytest.raises(asyncpg.UniqueViolationError, match="the name race is taken"):
            await racing
    owners_of_race = await pool.fetchval(
        "SELECT (SELECT count(*) FROM accounts WHERE name = 'race')"
        " + (SELECT count(*) FROM devices WHERE username = 'race')")
    assert owners_of_race == 1


async def test_basic_names_the_phone_of_that_name_else_the_account(hub: TestClient) -> None:
    await add_account(hub, "acme", OTHER_PASSWORD)
    await add_phone(hub, "acme", "acme-1", account_password=OTHER_PASSWORD)
    # The phone's credentials: GET /api/device is that phone.
    device = await get(hub, "/api/device", basic("acme-1"))
    assert device["username"] == "acme-1"
    # The account's: it has no single phone to describe.
    refused = await get(hub, "/api/device", basic("acme", OTHER_PASSWORD), status=403)
    assert refused["code"] == "forbidden"
    resp = await hub.put("/api/device/pacing", headers=basic("acme", OTHER_PASSWORD),
                         json={"perMinute": 5})
    assert resp.status == 403
    # Both read the account's data: a token made by the account is listed for the phone's
    # account too, and the account sees its phones' tokens.
    resp = await hub.post("/api/tokens", headers=basic("acme", OTHER_PASSWORD),
                          json={"name": "routing script"})
    created = await resp.json()
    assert resp.status == 201 and created["device"] is None, created
    resp = await hub.post("/api/tokens", headers=basic("acme-1"), json={"name": "pinned"})
    pinned = await resp.json()
    assert resp.status == 201 and pinned["device"] == "acme-1", pinned
    seen = await get(hub, "/api/tokens", {"Authorization": f"Bearer {created['token']}"})
    assert {(t["name"], t["device"]) for t in seen["data"]} == {
        ("routing script", None), ("pinned", "acme-1")}
    own = await get(hub, "/api/tokens", basic("acme-1"))
    assert [t["name"] for t in own["data"]] == ["pinned"]
    # A phone cannot revoke its account's token; the account can revoke its phone's.
    resp = await hub.delete(f"/api/tokens/{created['id']}", headers=basic("acme-1"))
    assert resp.status == 404
    resp = await hub.delete(f"/api/tokens/{pinned['id']}",
                            headers={"Authorization": f"Bearer {created['token']}"})
    assert resp.status == 200


async def test_a_migrated_name_keeps_meaning_its_phone(hub: TestClient, pool: asyncpg.Pool
                                                       ) -> None:
    """`device add NAME` makes an account and a phone named NAME, as the migration does:
    Basic NAME is the phone; the account acts through its own tokens."""
    device_id = await add_device(hub, "shop-phone-1")
    account = await pool.fetchrow("SELECT * FROM accounts")
    device = await pool.fetchrow("SELECT * FROM devices")
    assert account["name"] == "shop-phone-1" and device["account_id"] == account["id"]
    assert (await get(hub, "/api/device"))["id"] == device_id
    auth = hub.app[AUTH]
    owner = await owners.login_account(pool, auth.kdf, auth.params, "shop-phone-1", PASSWORD)
    assert owner is not None and owner.is_account and owner.account_id == account["id"]


async def test_an_account_cannot_connect_as_a_phone(hub: TestClient) -> None:
    await add_account(hub, "acme")
    phone = await RawPhone.connect(ws_url(hub))
    try:
        await phone.send({"type": "auth", "username": "acme", "password": PASSWORD})
        assert (await phone.recv())["type"] == "auth_failed"
        assert await phone.closed_with() == 4401
    finally:
        await phone.session.close()


async def test_each_password_opens_the_same_key_and_changes_alone(hub: TestClient,
                                                                 pool: asyncpg.Pool) -> None:
    await add_account(hub, "acme")
    await add_phone(hub, "acme", "acme-1")
    resp = await hub.post("/api/tokens", headers=basic("acme"), json={})
    account_token = (await resp.json())["token"]
    bearer = {"Authorization": f"Bearer {account_token}"}
    phone = await RawPhone.login(ws_url(hub), "acme-1", PASSWORD)
    auth = hub.app[AUTH]
    async with pool.acquire() as conn:
        await owners.change_account_password(conn, auth.kdf, auth.params, "acme", PASSWORD,
                                             OTHER_PASSWORD)
    try:
        # The account's old password and its tokens end; its phone is untouched.
        await until(lambda: _status(hub, "/api/tokens", bearer, 401))
        await get(hub, "/api/tokens", basic("acme"), status=401)
        await get(hub, "/api/tokens", basic("acme", OTHER_PASSWORD))
        await phone.nothing_for(0.3)
        assert (await get(hub, "/api/device", basic("acme-1")))["online"] is True
        # A phone added with the new password reads what the first one can.
        await add_phone(hub, "acme", "acme-2", account_password=OTHER_PASSWORD)
        with pytest.raises(AssertionError, match="did not log in"):
            await add_phone(hub, "acme", "acme-3", account_password=PASSWORD)
    finally:
        await phone.close()


async def test_changing_the_account_password_needs_the_current_one(hub: TestClient,
                                                                   pool: asyncpg.Pool) -> None:
    await add_account(hub, "acme")
    auth = hub.app[AUTH]
    async with pool.acquire() as conn:
        with pytest.raises(AccountError, match="current password is wrong"):
            await owners.change_account_password(conn, auth.kdf, auth.params, "acme",
                                                 "wrong password", OTHER_PASSWORD)
        with pytest.raises(AccountError, match="no account named"):
            await owners.change_account_password(conn, auth.kdf, auth.params, "nobody",
                                                 PASSWORD, OTHER_PASSWORD)
    await get(hub, "/api/tokens", basic("acme"))


async def test_removing_an_account_ends_its_phones(hub: TestClient, pool: asyncpg.Pool) -> None:
    await add_account(hub, "acme")
    await add_phone(hub, "acme", "acme-1")
    await add_device(hub, "bystander")
    phone = await RawPhone.login(ws_url(hub), "acme-1", PASSWORD)
    try:
        await owners.remove_account(pool, "acme")
        assert await phone.closed_with(timeout=10) == 4401
    finally:
        await phone.session.close()
    assert await pool.fetchval("SELECT count(*) FROM devices") == 1
    await get(hub, "/api/tokens", basic("acme-1"), status=401)
    await get(hub, "/api/tokens", basic("bystander"))
    with pytest.raises(AccountError, match="no account named"):
        await owners.remove_account(pool, "acme")
    assert accounts.USERNAME_RE.match("acme")  # the name is free again
    await add_account(hub, "acme")


async def _status(hub: TestClient, path: str, headers: dict[str, str], status: int) -> bool:
    resp = await hub.get(path, headers=headers)
    return resp.status == status


async def test_a_name_shared_by_an_account_and_its_phone_shares_its_password(
    hub: TestClient, pool: asyncpg.Pool,
) -> None:
    """Changing either password of a migrated pair changes both: an old password that
    leaked must not live on as the account's."""
    await add_device(hub, "shop-phone-1")
    auth = hub.app[AUTH]
    async with pool.acquire() as conn:
        await accounts.change_password(conn, auth.kdf, auth.params, "shop-phone-1", PASSWORD,
                                       OTHER_PASSWORD)
    assert await owners.login_account(pool, auth.kdf, auth.params, "shop-phone-1",
                                      PASSWORD) is None
    owner = await owners.login_account(pool, auth.kdf, auth.params, "shop-phone-1",
                                       OTHER_PASSWORD)
    assert owner is not None
    async with pool.acquire() as conn:
        await owners.change_account_password(conn, auth.kdf, auth.params, "shop-phone-1",
                                             OTHER_PASSWORD, PASSWORD)
    await get(hub, "/api/device", basic("shop-phone-1", OTHER_PASSWORD), status=401)
    assert (await get(hub, "/api/device"))["username"] == "shop-phone-1"


async def test_a_reset_is_refused_while_anything_else_opens_the_key(
    hub: TestClient, pool: asyncpg.Pool,
) -> None:
    """A reset destroys the data key; it is done only when the lost password was all that
    opened it, and the refusal names the command that keeps the data."""
    await add_account(hub, "acme")
    await add_phone(hub, "acme", "acme-1")
    await add_phone(hub, "acme", "acme-2")
    await add_device(hub, "solo")
    await add_phone(hub, "solo", "solo-2")
    sent = await send(hub, "acme-1")
    auth = hub.app[AUTH]
    before = await credential_rows(pool)
    refusals = [("acme-1", "device passwd acme-1 --account acme"),
                ("solo", "other phones (solo-2) hold the data key")]
    for name, words in refusals:
        async with pool.acquire() as conn:
            with pytest.raises(AccountError, match=re.escape(words)):
                await accounts.change_password(conn, auth.kdf, auth.params, name, None,
                                               OTHER_PASSWORD)
    # The account's own password still opens the key when acme-1 is its only phone.
    await owners.remove_phone(pool, "acme-2")
    async with pool.acquire() as conn:
        with pytest.raises(AccountError, match="--account acme"):
            await accounts.change_password(conn, auth.kdf, auth.params, "acme-1", None,
                                           OTHER_PASSWORD)
    assert [r for r in await credential_rows(pool) if r[1] != "acme-2"] == [
        r for r in before if r[1] != "acme-2"]
    assert (await get(hub, f"/api/messages/{sent['messageId']}", basic("acme-1")))[
        "message"] == "hello"
    # A device account's only phone may be reset: a new key for it and its account.
    await owners.remove_phone(pool, "solo-2")
    async with pool.acquire() as conn:
        assert await accounts.change_password(conn, auth.kdf, auth.params, "solo", None,
                                              OTHER_PASSWORD) is True
    await get(hub, "/api/device", basic("solo", OTHER_PASSWORD))
    assert await owners.login_account(pool, auth.kdf, auth.params, "solo",
                                      OTHER_PASSWORD) is not None


async def test_a_lost_phone_password_is_replaced_with_the_accounts(
    hub: TestClient, pool: asyncpg.Pool,
) -> None:
    """`owners.set_phone_password`: the account's login opens the key, the phone's new
    password wraps it; nothing is deleted, and only that phone's credentials change."""
    account = await account_with_phones(hub, 2)
    sent = await send(hub, "acme-1")
    phone_token = (await (await hub.post("/api/tokens", headers=basic("acme-1"),
                                         json={})).json())["token"]
    await add_device(hub, "other")
    auth = hub.app[AUTH]
    owner = await owners.login_account(pool, auth.kdf, auth.params, "acme", PASSWORD)
    stranger = await owners.login_account(pool, auth.kdf, auth.params, "other", PASSWORD)
    assert owner is not None and stranger is not None
    before = await credential_rows(pool)
    async with pool.acquire() as conn:
        with pytest.raises(AccountError, match="account 'other' has no phone named 'acme-1'"):
            await owners.set_phone_password(conn, auth.kdf, auth.params, stranger, "acme-1",
                                            OTHER_PASSWORD)
        with pytest.raises(AccountError, match="no device named 'ghost'"):
            await owners.set_phone_password(conn, auth.kdf, auth.params, owner, "ghost",
                                            OTHER_PASSWORD)
    assert await credential_rows(pool) == before

    async with pool.acquire() as conn:
        assert await owners.set_phone_password(conn, auth.kdf, auth.params, owner, "acme-1",
                                               OTHER_PASSWORD) is False
    await until(lambda: _status(hub, "/api/device", basic("acme-1"), 401))
    shown = await get(hub, f"/api/messages/{sent['messageId']}", basic("acme-1", OTHER_PASSWORD))
    assert shown["message"] == "hello"  # the same key: nothing was lost
    await until(lambda: _status(hub, "/api/tokens", {"Authorization": f"Bearer {phone_token}"},
                                401))
    # The account, its token and its other phone are as they were.
    await get(hub, "/api/tokens", account.bearer)
    await get(hub, "/api/tokens", basic("acme"))
    await get(hub, "/api/device", basic("acme-2"))
    # An owner whose password changed since its login can no longer do it.
    async with pool.acquire() as conn:
        await owners.change_account_password(conn, auth.kdf, auth.params, "acme", PASSWORD,
                                             OTHER_PASSWORD)
        with pytest.raises(AccountError, match="credentials changed"):
            await owners.set_phone_password(conn, auth.kdf, auth.params, owner, "acme-2",
                                            OTHER_PASSWORD)
    await get(hub, "/api/device", basic("acme-2"))
