"""`smsnodes-hub account ...`, `device add --account` and `token create --account`: an
account with several phones, managed from the command line (ACCOUNTS.md "Managing phones")."""

from __future__ import annotations

from smsnodes_hub.auth import owners
from tests.cli.test_cli import Cli, auth, cli  # noqa: F401 - the fixtures
from tests.support import NUMBER, PASSWORD, add_device, ws_url
from tests.wsclient import RawPhone

PHONE_PASSWORD = "the phone's own password"
NEW_PASSWORD = "a brand new account password"


async def test_a_second_phone_in_three_commands(cli: Cli, hub, pool, auth) -> None:  # noqa: F811
    """README's "add a second phone": an account, two phones, a token that routes."""
    made = await cli("account", "add", "acme", "--password-stdin", stdin=f"{PASSWORD}\n")
    assert made.code == 0 and "created account 'acme'" in made.out, made
    for phone in ("acme-1", "acme-2"):
        run = await cli("device", "add", phone, "--account", "acme", "--password-stdin",
                        stdin=f"{PASSWORD}\n{PHONE_PASSWORD}\n")
        assert run.code == 0 and f"created phone {phone!r}" in run.out, run
        assert PASSWORD not in run.out + run.err and PHONE_PASSWORD not in run.out + run.err
    token = await cli("token", "create", "--account", "acme", "--name", "routing",
                      "--password-stdin", stdin=f"{PASSWORD}\n")
    assert token.code == 0 and "for account 'acme'" in token.out, token
    secret = token.out.strip().splitlines()[-1]
    # Each phone logs in with its own password; the token reads the account's phones.
    phone = await RawPhone.login(ws_url(hub), "acme-2", PHONE_PASSWORD)
    try:
        resp = await hub.get("/api/devices", headers={"Authorization": f"Bearer {secret}"})
        listed = await resp.json()
        assert resp.status == 200, listed
        assert [(d["username"], d["online"]) for d in listed["data"]] == [
            ("acme-1", False), ("acme-2", True)]
    finally:
        await phone.close()
    listing = await cli("account", "list")
    assert listing.code == 0, listing
    header, *rows = listing.out.strip().splitlines()
    assert header.split() == ["ID", "NAME", "PHONES", "CREATED"]
    assert [r.split()[1:3] for r in rows] == [["acme", "2"]]


async def test_device_add_to_an_account_refuses_a_wrong_password_and_a_taken_name(
        cli: Cli, pool) -> None:  # noqa: F811
    assert (await cli("account", "add", "acme", "--password-stdin",
                      stdin=f"{PASSWORD}\n")).code == 0
    await add_device(pool, "solo")
    wrong = await cli("device", "add", "acme-1", "--account", "acme", "--password-stdin",
                      stdin=f"not the password\n{PHONE_PASSWORD}\n")
    assert "wrong account name or password" in wrong.one_error_line()
    for taken in ("acme", "solo"):
        run = await cli("device", "add", taken, "--account", "acme", "--password-stdin",
                        stdin=f"{PASSWORD}\n{PHONE_PASSWORD}\n")
        assert "already exists" in run.one_error_line()
    missing = await cli("device", "add", "acme-1", "--account", "acme", "--password-stdin",
                        stdin=f"{PASSWORD}\n")
    assert "no password on standard input" in missing.one_error_line()
    ghost = await cli("device", "add", "acme-1", "--account", "ghost", "--password-stdin",
                      stdin=f"{PASSWORD}\n{PHONE_PASSWORD}\n")
    assert "wrong account name or password" in ghost.one_error_line()
    taken = await cli("account", "add", "solo", "--password-stdin", stdin=f"{PASSWORD}\n")
    assert "already exists" in taken.one_error_line()
    assert await pool.fetchval("SELECT count(*) FROM devices") == 1


async def test_account_passwd_and_remove(cli: Cli, hub, pool, auth) -> None:  # noqa: F811
    assert (await cli("account", "add", "acme", "--password-stdin",
                      stdin=f"{PASSWORD}\n")).code == 0
    assert (await cli("device", "add", "acme-1", "--account", "acme", "--password-stdin",
                      stdin=f"{PASSWORD}\n{PHONE_PASSWORD}\n")).code == 0
    wrong = await cli("account", "passwd", "acme", "--password-stdin",
                      stdin=f"nope nope nope\n{NEW_PASSWORD}\n")
    assert "current password is wrong" in wrong.one_error_line()
    run = await cli("account", "passwd", "acme", "--password-stdin",
                    stdin=f"{PASSWORD}\n{NEW_PASSWORD}\n")
    assert run.code == 0, run
    assert await owners.login_account(pool, auth.kdf, auth.params, "acme", PASSWORD) is None
    assert await owners.login_account(pool, auth.kdf, auth.params, "acme",
                                      NEW_PASSWORD) is not None
    # The phone's own password is untouched.
    assert await auth.login(pool, "acme-1", PHONE_PASSWORD) is not None

    send = await hub.post("/api/send-sms", json={
        "deviceUsername": "acme-1", "password": PHONE_PASSWORD, "phoneNumbers": [NUMBER],
        "message": "kept until the account goes"})
    assert send.status == 200
    gone = await cli("account", "remove", "acme")
    assert gone.code == 0 and "removed account 'acme'" in gone.out, gone
    counts = await pool.fetchrow("SELECT (SELECT count(*) FROM accounts) AS a, "
                                 "(SELECT count(*) FROM devices) AS d, "
                                 "(SELECT count(*) FROM messages) AS m")
    assert tuple(counts) == (0, 0, 0)
    assert "no account named 'acme'" in (await cli("account", "remove", "acme")).one_error_line()


async def test_token_create_needs_a_device_or_an_account(cli: Cli, pool) -> None:  # noqa: F811
    await add_device(pool, "solo")
    both = await cli("token", "create", "solo", "--account", "solo", "--password-stdin",
                     stdin=f"{PASSWORD}\n")
    assert both.code == 2 and "either DEVICE or --account" in both.one_error_line()
    neither = await cli("token", "create", "--password-stdin", stdin=f"{PASSWORD}\n")
    assert neither.code == 2
    # A migrated-style account (solo, with its phone solo) gets an account token this way.
    run = await cli("token", "create", "--account", "solo", "--password-stdin",
                    stdin=f"{PASSWORD}\n")
    assert run.code == 0, run
    assert await pool.fetchval("SELECT device_id FROM tokens WHERE kind = 'api'") is None
