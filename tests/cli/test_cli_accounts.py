"""`smsnodes-hub account ...`, `device add --account` and `token create --account`: an
account with several phones, managed from the command line (ACCOUNTS.md "Managing phones")."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from smsnodes_hub.auth import owners
from tests.accounts_support import credential_rows
from tests.cli.test_cli import Cli, auth, cli  # noqa: F401 - the fixtures
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


async def test_a_shared_name_is_one_password_and_each_command_says_so(
        cli: Cli, hub, pool, auth) -> None:  # noqa: F811
    """A device account (and every migrated one): phone and account share the name and the
    password, so either command changes both, and says so; a phone of its own changes alone."""
    await add_device(pool, "solo")
    made = await cli("token", "create", "--account", "solo", "--password-stdin",
                     stdin=f"{PASSWORD}\n")
    routed = made.out.strip().splitlines()[-1]
    pinned = await token_of(hub, basic("solo"), account=False)
    run = await cli("device", "passwd", "solo", "--password-stdin",
                    stdin=f"{PASSWORD}\n{NEW_PASSWORD}\n")
    assert run.code == 0, run
    assert run.out.strip() == ("password changed for phone 'solo' and account 'solo' (one "
                               "name, one password); their tokens and sessions no longer work")
    assert await owners.login_account(pool, auth.kdf, auth.params, "solo", PASSWORD) is None
    assert await owners.login_account(pool, auth.kdf, auth.params, "solo",
                                      NEW_PASSWORD) is not None
    for token in (routed, pinned):
        await until(lambda: _answers(hub, token, 401), message="a token still works")  # noqa: B023

    back = await cli("account", "passwd", "solo", "--password-stdin",
                     stdin=f"{NEW_PASSWORD}\n{PASSWORD}\n")
    assert back.code == 0, back
    assert back.out.strip() == ("password changed for account 'solo' and phone 'solo' (one "
                                "name, one password); their tokens and sessions no longer work")
    assert await auth.login(pool, "solo", PASSWORD) is not None
    assert await auth.login(pool, "solo", NEW_PASSWORD) is None
    # With the account's password (the same one) instead of the phone's: both, again.
    by_account = await cli("device", "passwd", "solo", "--account", "solo", "--password-stdin",
                           stdin=f"{PASSWORD}\n{NEW_PASSWORD}\n")
    assert by_account.out.strip().startswith("password changed for phone 'solo' and account "
                                             "'solo' (one name, one password)"), by_account
    assert await owners.login_account(pool, auth.kdf, auth.params, "solo",
                                      NEW_PASSWORD) is not None
    assert await auth.login(pool, "solo", NEW_PASSWORD) is not None

    # An account of its own (`account add`): its phone's password is the phone's alone.
    await add_account(hub, "acme")
    await add_phone(hub, "acme", "acme-1", PHONE_PASSWORD)
    await add_phone(hub, "acme", "acme-2", PHONE_PASSWORD)
    acme = await token_of(hub, basic("acme"), account=True)
    own = await cli("device", "passwd", "acme-1", "--password-stdin",
                    stdin=f"{PHONE_PASSWORD}\n{NEW_PASSWORD}\n")
    assert own.code == 0, own
    assert own.out.strip() == ("password changed for phone 'acme-1'; its tokens and sessions "
                               "no longer work")
    assert await owners.login_account(pool, auth.kdf, auth.params, "acme",
                                      PASSWORD) is not None
    assert await auth.login(pool, "acme-2", PHONE_PASSWORD) is not None
    assert await _answers(hub, acme, 200)


async def test_a_lost_phone_password_is_replaced_with_the_accounts_and_nothing_is_lost(
        cli: Cli, hub, pool, auth) -> None:  # noqa: F811
    """`device passwd PHONE --account ACCOUNT`: the account's password opens the data key for
    the phone's new one; a reset, which would delete the data, is refused with those words."""
    await add_account(hub, "acme")
    await add_phone(hub, "acme", "acme-1", PHONE_PASSWORD)
    await add_phone(hub, "acme", "acme-2", PHONE_PASSWORD)
    await add_device(hub, "other")
    phone = await RawPhone.login(ws_url(hub), "acme-1", PHONE_PASSWORD)
    try:
        sent = await hub.post("/api/send-sms", headers=basic("acme-1", PHONE_PASSWORD),
                              json={"phoneNumbers": [NUMBER], "message": "kept"})
        message_id = (await sent.json())["messageId"]
        before = await credential_rows(pool)
        refused = [
            (["acme-1", "--reset"], f"{NEW_PASSWORD}\n",
             "cannot reset 'acme-1': account 'acme' still opens its data key with its own "
             "password, so nothing needs deleting; give the phone a new password with the "
             "account's: `smsnodes-hub device passwd acme-1 --account acme`"),
            (["acme-1", "--account", "acme"], f"not the password\n{NEW_PASSWORD}\n",
             "wrong account name or password"),
            (["acme-1", "--account", "other"], f"{PASSWORD}\n{NEW_PASSWORD}\n",
             "account 'other' has no phone named 'acme-1'"),
            (["ghost", "--account", "acme"], f"{PASSWORD}\n{NEW_PASSWORD}\n",
             "no device named 'ghost'"),
            (["acme-1", "--account", "acme"], f"{PASSWORD}\nshort\n",
             "password must be at least 8 characters"),
        ]
        for argv, stdin, words in refused:
            run = await cli("device", "passwd", *argv, "--password-stdin", stdin=stdin)
            assert run.one_error_line() == f"smsnodes-hub: {words}", argv
            assert NEW_PASSWORD not in run.out + run.err and PASSWORD not in run.err
        both = await cli("device", "passwd", "acme-1", "--account", "acme", "--reset")
        assert both.code == 2 and "not allowed with argument" in both.err
        assert await credential_rows(pool) == before

        run = await cli("device", "passwd", "acme-1", "--account", "acme", "--password-stdin",
                        stdin=f"{PASSWORD}\n{NEW_PASSWORD}\n")
        assert run.code == 0, run
        assert run.out.strip() == ("password changed for phone 'acme-1'; its tokens and sessions "
                                   "no longer work; stored messages kept")
        assert await phone.closed_with(timeout=10) == 4401  # its old login ended
    finally:
        await phone.session.close()
    assert await auth.login(pool, "acme-1", PHONE_PASSWORD) is None
    again = await hub.get(f"/api/messages/{message_id}", headers=basic("acme-1", NEW_PASSWORD))
    assert (await again.json())["message"] == "kept"
    assert await auth.login(pool, "acme-2", PHONE_PASSWORD) is not None
    assert await owners.login_account(pool, auth.kdf, auth.params, "acme",
                                      PASSWORD) is not None


async def test_a_reset_of_a_shared_name_is_refused_while_other_phones_hold_the_key(
        cli: Cli, hub, pool) -> None:  # noqa: F811
    await add_device(hub, "solo")
    await add_phone(hub, "solo", "solo-2")
    before = await credential_rows(pool)
    run = await cli("device", "passwd", "solo", "--reset", "--password-stdin",
                    stdin=f"{NEW_PASSWORD}\n")
    line = run.one_error_line()
    assert "its password is also account 'solo''s" in line and "(solo-2)" in line, line
    assert "`smsnodes-hub device passwd solo`" in line, line
    assert await credential_rows(pool) == before


async def token_of(hub: TestClient, credentials: dict[str, str], *, account: bool) -> str:
    resp = await hub.post("/api/tokens", headers=credentials, json={})
    body = await resp.json()
    assert resp.status == 201 and (body["device"] is None) == account, body
    return str(body["token"])


async def _answers(hub: TestClient, token: str, status: int) -> bool:
    resp = await hub.get("/api/tokens", headers={"Authorization": f"Bearer {token}"})
    return resp.status == status
