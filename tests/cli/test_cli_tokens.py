"""`smsnodes-hub token ...` and `device pace`: API tokens (a phone's and an account's own)
and pacing from the command line."""

from __future__ import annotations

from typing import Any

from smsnodes_hub.appkeys import AUTH
from tests.cli.test_cli import Cli, cli  # noqa: F401 - the fixture
from tests.support import (
    NUMBER,
    PASSWORD,
    add_account,
    add_device,
    add_phone,
    basic,
    until,
    ws_url,
)
from tests.wsclient import RawPhone


async def test_token_create_list_revoke_through_the_cli(cli: Cli, hub, pool) -> None:  # noqa: F811
    await add_device(pool, "phone-t")
    run = await cli("token", "create", "phone-t", "--name", "billing", "--password-stdin",
                    stdin=f"{PASSWORD}\n")
    assert run.code == 0, run
    token = run.out.strip().splitlines()[-1]
    assert token.startswith("snh_") and PASSWORD not in run.out + run.err
    resp = await hub.post("/api/send-sms", headers={"Authorization": f"Bearer {token}"},
                          json={"phoneNumbers": [NUMBER], "message": "from a cli token"})
    assert resp.status == 200, await resp.json()

    listing = await cli("token", "list", "phone-t")
    assert listing.code == 0 and "api" in listing.out and "billing" in listing.out
    assert token not in listing.out
    token_id = await pool.fetchval("SELECT id FROM tokens WHERE kind = 'api'")
    revoked = await cli("token", "revoke", "phone-t", str(token_id))
    assert revoked.code == 0, revoked
    hub.app[AUTH].cache.clear()
    resp = await hub.get("/api/tokens", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401

    wrong = await cli("token", "create", "phone-t", "--password-stdin", stdin="nope nope\n")
    assert "wrong device name or password" in wrong.one_error_line()
    assert "no device named" in (await cli("token", "list", "ghost")).one_error_line()
    again = await cli("token", "revoke", "phone-t", str(token_id))
    assert "has no token" in again.one_error_line()


async def test_device_pace_applies_to_the_connected_phone(cli: Cli, hub, pool) -> None:  # noqa: F811
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    run = await cli("device", "pace", "shop-phone-1", "2")
    assert run.code == 0 and "at most 2 SMS per minute" in run.out, run
    await phone.nothing_for(0.3)  # the hub heard it over the bus
    for n in range(3):
        await hub.post("/api/send-sms", json={
            "deviceUsername": "shop-phone-1", "password": PASSWORD,
            "phoneNumbers": [NUMBER], "message": f"m{n}"})
    frames = await phone.recv_sms(2)
    for frame in frames:
        await phone.ack(frame)
    await phone.nothing_for(0.5)
    assert (await cli("device", "pace", "shop-phone-1", "off")).code == 0
    assert len(await phone.recv_sms(1, timeout=3)) == 1
    for bad in ("0x", "-3", "100001", "²"):
        assert "PER_MINUTE" in (await cli("device", "pace", "shop-phone-1", bad)).one_error_line()
    await phone.close()


async def test_an_accounts_own_tokens_listed_and_revoked_through_the_cli(
        cli: Cli, hub, pool) -> None:  # noqa: F811
    """`token list|revoke --account`: the account's own (routed) tokens only; a phone's token
    or another account's is "no token" there, and stays as it was."""
    await add_account(hub, "acme")
    await add_phone(hub, "acme", "acme-1")
    await add_device(hub, "other")
    mine = await new_token(hub, basic("acme"), "routing")
    phones = await new_token(hub, basic("acme-1"), "phone's")
    theirs = await new_token(hub, basic("other"), "theirs")
    second = await new_token(hub, basic("acme"), "second")

    listing = await cli("token", "list", "--account", "acme")
    assert listing.code == 0, listing
    header, *rows = listing.out.strip().splitlines()
    assert header.split() == ["ID", "KIND", "NAME", "CREATED", "LAST", "USED"]
    assert [r.split()[:3] for r in rows] == [[str(mine["id"]), "api", "routing"],
                                           [str(second["id"]), "api", "second"]]
    assert mine["token"] not in listing.out

    snapshot = await token_rows(pool)
    for foreign in (phones["id"], theirs["id"], 987654):
        run = await cli("token", "revoke", "--account", "acme", str(foreign))
        assert run.one_error_line() == f"smsnodes-hub: account 'acme' has no token {foreign}"
    for argv in (["list", "--account", "ghost"], ["revoke", "--account", "ghost",
                                                  str(mine["id"])]):
        run = await cli("token", *argv)
        assert run.code == 1 and "no account named 'ghost'" in run.one_error_line(), argv
    for argv in (["list", "acme-1", "--account", "acme"],
                 ["revoke", "acme-1", str(phones["id"]), "--account", "acme"],
                 ["list"], ["revoke", str(mine["id"])]):
        run = await cli("token", *argv)
        assert run.code == 2 and "give either DEVICE or --account ACCOUNT" in run.err, argv
    assert await token_rows(pool) == snapshot
    for token in (phones, theirs):  # still working
        resp = await hub.get("/api/tokens", headers=bearer(token))
        assert resp.status == 200, await resp.text()

    revoked = await cli("token", "revoke", "--account", "acme", str(mine["id"]))
    assert revoked.code == 0, revoked
    assert revoked.out.strip() == f"revoked token {mine['id']} of account 'acme'"
    await until(lambda: _refused(hub, mine), message="the revoked token still works")
    assert (await hub.get("/api/tokens", headers=bearer(second))).status == 200
    again = await cli("token", "revoke", "--account", "acme", str(mine["id"]))
    assert "has no token" in again.one_error_line()
    assert (await cli("token", "revoke", "--account", "acme", str(second["id"]))).code == 0
    empty = await cli("token", "list", "--account", "acme")
    assert empty.code == 0 and empty.out.strip() == "account 'acme' has no tokens of its own"
    # The phone's token is listed (and revoked) by phone, as before.
    assert str(phones["id"]) in (await cli("token", "list", "acme-1")).out


async def test_a_migrated_accounts_own_tokens_are_not_its_phones(cli: Cli, hub, pool) -> None:  # noqa: F811
    """The account and its first phone share the name: `--account` means the account."""
    await add_device(hub, "solo")
    phone = await new_token(hub, basic("solo"), "pinned")
    run = await cli("token", "create", "--account", "solo", "--name", "routed",
                    "--password-stdin", stdin=f"{PASSWORD}\n")
    assert run.code == 0, run
    own = await pool.fetchval("SELECT id FROM tokens WHERE device_id IS NULL")
    assert await listed_ids(cli, "--account", "solo") == [own]
    assert await listed_ids(cli, "solo") == [phone["id"]]
    assert "has no token" in (await cli("token", "revoke", "--account", "solo",
                                        str(phone["id"]))).one_error_line()
    assert "has no token" in (await cli("token", "revoke", "solo", str(own))).one_error_line()
    assert await pool.fetchval("SELECT count(*) FROM tokens WHERE kind = 'api'") == 2


async def new_token(hub: Any, auth: dict[str, str], name: str) -> dict[str, Any]:
    resp = await hub.post("/api/tokens", headers=auth, json={"name": name})
    body = await resp.json()
    assert resp.status == 201, body
    return dict(body)


async def listed_ids(cli: Cli, *whose: str) -> list[int]:  # noqa: F811
    run = await cli("token", "list", *whose)
    assert run.code == 0, run
    return [int(row.split()[0]) for row in run.out.strip().splitlines()[1:]]


def bearer(token: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['token']}"}


async def _refused(hub: Any, token: dict[str, Any]) -> bool:
    return (await hub.get("/api/tokens", headers=bearer(token))).status == 401


async def token_rows(pool: Any) -> list[tuple[object, ...]]:
    rows = await pool.fetch("SELECT id, account_id, device_id, kind, lookup FROM tokens "
                            "ORDER BY id")
    return [tuple(r) for r in rows]
