"""`smsnodes-hub webhook add | list | remove`: webhooks from the command line, whose secret
signs what the running hub delivers."""

from __future__ import annotations

from device_sim import SimulatedPhone

from .conftest import PASSWORD, add_device, ws_url
from .test_cli import Cli, cli  # noqa: F401 - the fixture
from .test_webhooks import LOCAL, SENDER, Receiver, receiver  # noqa: F401


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
