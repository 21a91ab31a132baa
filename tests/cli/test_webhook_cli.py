"""`smsnodes-hub webhook add | list | update | remove`: webhooks from the command line, whose secret
signs what the running hub delivers."""

from __future__ import annotations

import asyncio

from device_sim import SimulatedPhone

from tests.cli.test_cli import Cli, cli  # noqa: F401 - the fixture
from tests.support import PASSWORD, add_device, ws_url
from tests.webhooks.receiver import LOCAL, SENDER, Receiver


async def test_webhook_add_list_remove_through_the_cli(
        cli: Cli, make_hub, receiver: Receiver, pool) -> None:  # noqa: F811
    hub = await make_hub(**LOCAL)
    await add_device(pool, "phone-w")
    url = receiver.url("/cli")
    run = await cli("webhook", "add", "phone-w", url, "--event", "sms.received",
                    "--event", "device.online", "--password-stdin", stdin=f"{PASSWORD}\n",
                    **LOCAL)
    assert run.code == 0, run
    secret = run.out.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and PASSWORD not in run.out + run.err
    hook_id = await pool.fetchval("SELECT id FROM webhooks")
    assert f"created webhook {hook_id}" in run.out
    receiver.secrets["/cli"] = secret

    # The hub delivers with the secret the CLI printed.
    async with SimulatedPhone(ws_url(hub), "phone-w", PASSWORD) as phone:
        await phone.send_inbound(SENDER, "signed for the cli")
        events = await receiver.count("/cli", 2)
    assert {e["type"] for e in events} == {"device.online", "sms.received"}

    listing = await cli("webhook", "list", "phone-w")
    assert listing.code == 0, listing
    assert url in listing.out and "sms.received,device.online" in listing.out
    assert secret not in listing.out and "yes" in listing.out

    removed = await cli("webhook", "remove", "phone-w", str(hook_id))
    assert removed.code == 0 and f"removed webhook {hook_id}" in removed.out
    assert await pool.fetchval("SELECT count(*) FROM webhooks") == 0
    assert "has no webhooks" in (await cli("webhook", "list", "phone-w")).out


async def test_webhook_cli_refuses_bad_input_in_one_line(cli: Cli, pool) -> None:  # noqa: F811
    await add_device(pool, "phone-w")
    await add_device(pool, "phone-x")
    good = "https://93.184.216.34/hook"  # never contacted: no hub runs here
    stdin = f"{PASSWORD}\n"
    cases = [
        (("webhook", "add", "phone-w", good, "--password-stdin"), "give at least one --event"),
        (("webhook", "add", "phone-w", good, "--event", "sms.sent", "--password-stdin"),
         'unknown event "sms.sent"'),
        (("webhook", "add", "phone-w", "https://127.0.0.1/", "--event", "sms.received",
          "--password-stdin"), "public address"),
        (("webhook", "add", "ghost", good, "--event", "sms.received", "--password-stdin"),
         "wrong device name or password"),
        (("webhook", "list", "ghost"), "no device named 'ghost'"),
        (("webhook", "remove", "phone-w", "12345"), "has no webhook 12345"),
    ]
    for args, expected in cases:
        run = await cli(*args, stdin=stdin)
        assert expected in run.one_error_line(), (args, run)
    wrong = await cli("webhook", "add", "phone-w", good, "--event", "sms.received",
                      "--password-stdin", stdin="not the password\n")
    assert "wrong device name or password" in wrong.one_error_line()
    assert await pool.fetchval("SELECT count(*) FROM webhooks") == 0

    # One account cannot remove another's webhook by naming its own device.
    run = await cli("webhook", "add", "phone-w", good, "--event", "sms.received",
                    "--password-stdin", stdin=stdin)
    assert run.code == 0, run
    hook_id = await pool.fetchval("SELECT id FROM webhooks")
    other = await cli("webhook", "remove", "phone-x", str(hook_id))
    assert f"has no webhook {hook_id}" in other.one_error_line()
    assert "no webhooks" in (await cli("webhook", "list", "phone-x")).out
    assert await pool.fetchval("SELECT count(*) FROM webhooks") == 1


async def test_webhook_update_through_the_cli_as_patch_does(
        cli: Cli, make_hub, receiver: Receiver, pool) -> None:  # noqa: F811
    hub = await make_hub(**LOCAL)
    await add_device(pool, "phone-w")
    run = await cli("webhook", "add", "phone-w", receiver.url("/old"), "--event",
                    "device.online", "--password-stdin", stdin=f"{PASSWORD}\n", **LOCAL)
    assert run.code == 0, run
    secret = run.out.strip().splitlines()[-1]
    hook_id = await pool.fetchval("SELECT id FROM webhooks")
    receiver.secrets["/new"] = secret

    # New events and URL; the secret stays (it is not shown again, nor needed).
    new_url = receiver.url("/new")
    run = await cli("webhook", "update", "phone-w", str(hook_id), "--url", new_url,
                    "--event", "sms.received", **LOCAL)
    assert run.code == 0, run
    assert run.out.strip() == (f"updated webhook {hook_id} of 'phone-w': {new_url} "
                               "(sms.received), active")
    assert secret not in run.out
    row = await pool.fetchrow("SELECT url, events, active FROM webhooks")
    assert (row["url"], list(row["events"]), row["active"]) == (new_url, ["sms.received"], True)

    # Disabled by the receiver (410), then re-activated from the command line.
    receiver.script["/new"] = [410]
    async with SimulatedPhone(ws_url(hub), "phone-w", PASSWORD) as phone:
        await phone.send_inbound(SENDER, "first")
        await receiver.count("/new", 1)
        for _ in range(200):
            if not await pool.fetchval("SELECT active FROM webhooks"):
                break
            await asyncio.sleep(0.05)
        listing = await cli("webhook", "list", "phone-w")
        assert "disabled: the receiver answered 410 Gone" in listing.out, listing
        run = await cli("webhook", "update", "phone-w", str(hook_id), "--activate")
        assert run.code == 0 and run.out.strip().endswith("(sms.received), active"), run
        row = await pool.fetchrow("SELECT active, disabled_reason, failing_since FROM webhooks")
        assert tuple(row) == (True, None, None)
        await phone.send_inbound(SENDER, "back again")
        [_, event] = await receiver.count("/new", 2)  # verified with the secret from `add`
        assert event["data"]["message"] == "back again"

        # Paused by its owner: shown as such, and sent nothing.
        run = await cli("webhook", "update", "phone-w", str(hook_id), "--deactivate")
        assert run.code == 0 and run.out.strip().endswith(
            "inactive: disabled by its owner"), run
        await phone.send_inbound(SENDER, "while paused")
        await asyncio.sleep(0.5)
    assert len(receiver.on("/new")) == 2 and receiver.on("/old") == []
    assert "disabled: disabled by its owner" in (await cli("webhook", "list", "phone-w")).out


async def test_webhook_update_refuses_bad_input_and_changes_nothing(
        cli: Cli, pool) -> None:  # noqa: F811
    await add_device(pool, "phone-w")
    await add_device(pool, "phone-x")
    good = "https://93.184.216.34/hook"  # never contacted: no hub runs here
    run = await cli("webhook", "add", "phone-w", good, "--event", "sms.received",
                    "--password-stdin", stdin=f"{PASSWORD}\n")
    assert run.code == 0, run
    hook_id = str(await pool.fetchval("SELECT id FROM webhooks"))
    before = [dict(r) for r in await pool.fetch("SELECT * FROM webhooks")]
    cases = [
        (("phone-w", hook_id), "nothing to change"),
        (("phone-w", hook_id, "--event", "sms.sent"), 'unknown event "sms.sent"'),
        (("phone-w", hook_id, "--event", "sms.received", "--event", "sms.received"),
         "listed twice"),
        (("phone-w", hook_id, "--url", "https://127.0.0.1/"), "public address"),
        (("phone-w", hook_id, "--url", "http://93.184.216.34/"), "allow_http"),
        (("phone-w", hook_id, "--url", "https://10.0.0.8/", "--event", "device.online"),
         "public address"),  # all or nothing: the events are not changed either
        (("phone-w", "12345", "--activate"), "has no webhook 12345"),
        (("phone-x", hook_id, "--deactivate"), f"has no webhook {hook_id}"),  # not theirs
        (("ghost", hook_id, "--activate"), "no device named 'ghost'"),
    ]
    for args, expected in cases:
        run = await cli("webhook", "update", *args)
        assert expected in run.one_error_line(), (args, run)
    both = await cli("webhook", "update", "phone-w", hook_id, "--activate", "--deactivate")
    assert both.code == 2 and "not allowed with argument" in both.err
    assert [dict(r) for r in await pool.fetch("SELECT * FROM webhooks")] == before
