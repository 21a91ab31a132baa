"""`smsnodes-hub webhook add | list | update | remove`: the webhooks of a device's account."""

from __future__ import annotations

import argparse

import asyncpg

from smsnodes_hub import webhooks
from smsnodes_hub.auth.crypto import PasswordKdf
from smsnodes_hub.cli.common import (
    CliError,
    account_id,
    device_password,
    login,
    with_connection,
    with_kdf,
)
from smsnodes_hub.config import Settings
from smsnodes_hub.keyfile import KeyFileError
from smsnodes_hub.webhooks.hubkey import HubKeys


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    webhook = commands.add_parser("webhook", help="manage the webhooks of a device's account")
    actions = webhook.add_subparsers(dest="webhook_command", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add", help="register a webhook (needs the device password; the signing secret is "
                    "shown once)"
    )
    add.add_argument("device")
    add.add_argument("url", help="the receiver's https:// address")
    add.add_argument("--event", action="append", metavar="EVENT",
                     help=f"an event to send, repeat for several: {', '.join(webhooks.EVENTS)}")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the device password from standard input")
    add.set_defaults(handler=_add)
    listing = actions.add_parser("list", help="list the webhooks of a device's account")
    listing.add_argument("device")
    listing.set_defaults(handler=_list)
    update = actions.add_parser(
        "update", help="change a webhook's events or url, re-activate or pause it (as "
                       "PATCH /api/webhooks/{id})"
    )
    update.add_argument("device")
    update.add_argument("id", type=int)
    update.add_argument("--url", help="the receiver's new https:// address")
    update.add_argument("--event", action="append", metavar="EVENT",
                        help="the events to send from now on (replacing the current ones), "
                             "repeat for several")
    active = update.add_mutually_exclusive_group()
    active.add_argument("--activate", action="store_const", const=True, dest="active",
                        help="re-activate a disabled webhook (what waited is sent at once)")
    active.add_argument("--deactivate", action="store_const", const=False, dest="active",
                        help="pause the webhook")
    update.set_defaults(handler=_update)
    remove = actions.add_parser("remove", help="delete a webhook")
    remove.add_argument("device")
    remove.add_argument("id", type=int)
    remove.set_defaults(handler=_remove)


def _add(args: argparse.Namespace, settings: Settings) -> int:
    if not args.event:
        raise CliError(f"give at least one --event: {', '.join(webhooks.EVENTS)}")
    password = device_password(args)

    async def work(conn: asyncpg.Connection, kdf: PasswordKdf) -> None:
        events = webhooks.check_events(args.event)
        url = await webhooks.check_url(args.url, settings.webhooks)
        # The password opens the account's data key, which seals the signing secret (and
        # the hub's key seals a second copy, for deliveries while no account key is here).
        principal = await login(conn, kdf, settings, args.device, password)
        hook, secret = await webhooks.create(conn, principal, url, events,
                                             HubKeys(settings).require())
        print(f"created webhook {hook.id} for {args.device!r}: {url} ({', '.join(events)})")
        print("signing secret (shown only now):")
        print(secret)

    return with_kdf(settings, work, errors=(webhooks.WebhookError, KeyFileError))


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: asyncpg.Connection) -> None:
        found = await webhooks.list_webhooks(conn, await account_id(conn, args.device))
        if not found:
            print(f"device {args.device!r} has no webhooks")
            return
        print(f"{'ID':>6}  {'ACTIVE':<6}  {'EVENTS':<40}  URL")
        for hook in found:
            active = "yes" if hook.active else "no"
            print(f"{hook.id:>6}  {active:<6}  {','.join(hook.events):<40}  {hook.url}")
            if hook.disabled_reason:
                print(f"{'':>6}  disabled: {hook.disabled_reason}")

    return with_connection(settings, work)


def _update(args: argparse.Namespace, settings: Settings) -> int:
    if args.url is None and args.event is None and args.active is None:
        raise CliError("nothing to change: give --url, --event, --activate or --deactivate")

    async def work(conn: asyncpg.Connection) -> None:
        account = await account_id(conn, args.device)
        events = webhooks.check_events(args.event) if args.event is not None else None
        url = (await webhooks.check_url(args.url, settings.webhooks)
               if args.url is not None else None)
        hook = await webhooks.update_webhook(conn, account, args.id, url=url, events=events,
                                             active=args.active)
        if hook is None:
            raise CliError(f"device {args.device!r} has no webhook {args.id}")
        state = "active" if hook.active else f"inactive: {hook.disabled_reason}"
        print(f"updated webhook {hook.id} of {args.device!r}: {hook.url} "
              f"({', '.join(hook.events)}), {state}")

    return with_connection(settings, work, errors=(webhooks.WebhookError,))


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: asyncpg.Connection) -> None:
        if not await webhooks.delete_webhook(conn, await account_id(conn, args.device),
                                             args.id):
            raise CliError(f"device {args.device!r} has no webhook {args.id}")
        print(f"removed webhook {args.id} of {args.device!r}")

    return with_connection(settings, work)
