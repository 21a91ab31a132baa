"""`smsnodes-hub admin ...`: operator accounts from the real command line, checked by
logging in to a real hub on the same database."""

from __future__ import annotations

import re
from typing import Any

from tests.cli.test_cli import Cli, cli  # noqa: F401 (the fixture)
from tests.dashboard_support import login
from tests.support import add_device, basic

PASSWORD = "operator passphrase"
NEW_PASSWORD = "another operator passphrase"



async def test_add_list_passwd_remove(cli: Cli, make_hub: Any) -> None:  # noqa: F811
    hub = await make_hub()
    run = await cli("admin", "add", "night-shift", "--password-stdin", stdin=PASSWORD + "\n")
    assert run.code == 0, run
    assert "created operator 'night-shift'" in run.out
    assert PASSWORD not in run.out + run.err
    listed = await cli("admin", "list")
    assert re.search(r"night-shift\s+\S+ \S+\s+never\s+0", listed.out), listed.out

    assert (await login(hub, "night-shift", PASSWORD)).status == 303
    cookie = {"Cookie": f"smsnodes_session={_session(hub)}"}
    listed = await cli("admin", "list")
    assert re.search(r"night-shift\s+\S+ \S+\s+\d{4}-\S+ \S+\s+1$", listed.out, re.M), listed.out

    run = await cli("admin", "passwd", "night-shift", "--password-stdin",
                    stdin=NEW_PASSWORD + "\n")
    assert run.code == 0, run
    assert "1 dashboard login ended" in run.out
    assert (await hub.get("/dashboard", headers=cookie, allow_redirects=False)).status == 303
    hub.session.cookie_jar.clear()
    assert (await login(hub, "night-shift", PASSWORD)).status == 401
    hub.session.cookie_jar.clear()
    assert (await login(hub, "night-shift", NEW_PASSWORD)).status == 303
    cookie = {"Cookie": f"smsnodes_session={_session(hub)}"}

    run = await cli("admin", "remove", "night-shift")
    assert run.code == 0 and "removed operator 'night-shift'" in run.out
    assert (await hub.get("/dashboard", headers=cookie, allow_redirects=False)).status == 303
    assert "no operators yet" in (await cli("admin", "list")).out


async def test_generated_password_is_shown_once_and_works(cli: Cli, make_hub: Any) -> None:  # noqa: F811
    hub = await make_hub()
    run = await cli("admin", "add", "day-shift", "--generate-password")
    assert run.code == 0, run
    match = re.search(r"generated password \(shown only now\): (\S+)", run.out)
    assert match and run.out.count(match[1]) == 1
    assert (await login(hub, "day-shift", match[1])).status == 303


async def test_operators_and_devices_are_separate_accounts(cli: Cli, make_hub: Any) -> None:  # noqa: F811
    hub = await make_hub()
    await add_device(hub, "shop-phone-1", PASSWORD)
    # A device's credentials do not open the dashboard.
    assert (await login(hub, "shop-phone-1", PASSWORD)).status == 401
    # The same name can be an operator too; each keeps its own password.
    run = await cli("admin", "add", "shop-phone-1", "--password-stdin",
                    stdin=NEW_PASSWORD + "\n")
    assert run.code == 0, run
    hub.session.cookie_jar.clear()
    assert (await login(hub, "shop-phone-1", NEW_PASSWORD)).status == 303
    assert (await hub.get("/api/device", headers=basic("shop-phone-1", PASSWORD))).status == 200


async def test_every_error_is_one_line(cli: Cli) -> None:  # noqa: F811
    assert (await cli("admin", "add", "ok-name", "--password-stdin",
                      stdin=PASSWORD + "\n")).code == 0
    cases = [
        (("admin", "add", "x", "--password-stdin"), PASSWORD, "username must be 3 to 64"),
        (("admin", "add", "short-pw", "--password-stdin"), "short", "at least 8"),
        (("admin", "add", "ok-name", "--password-stdin"), PASSWORD, "already exists"),
        (("admin", "remove", "nobody"), "", "no operator named 'nobody'"),
        (("admin", "passwd", "nobody", "--password-stdin"), NEW_PASSWORD,
         "no operator named 'nobody'"),
        (("admin", "passwd", "ok-name", "--password-stdin"), "short", "at least 8"),
        (("admin", "add", "no-stdin", "--password-stdin"), "", "no password on standard input"),
    ]
    for args, stdin, message in cases:
        run = await cli(*args, stdin=stdin + "\n" if stdin else "")
        assert message in run.one_error_line(), (args, run)
        assert run.code == 1


def _session(hub: Any) -> str:
    for cookie in hub.session.cookie_jar:
        if cookie.key == "smsnodes_session":
            return cookie.value
    raise AssertionError("not logged in")
