"""`smsnodes-hub account add | list | passwd | remove | quota`: accounts that own several
phones (docs/accounts.md). Their phones are added with `device add NAME --account ACCOUNT`."""

from __future__ import annotations

import argparse

import asyncpg

from smsnodes_hub.api.pagination import plain_number
from smsnodes_hub.app import kdf_params
from smsnodes_hub.auth import owners
from smsnodes_hub.auth.crypto import PasswordKdf
from smsnodes_hub.cli.common import (
    CliError,
    current_password,
    new_password,
    password_options,
    print_table,
    show_generated,
    when,
    with_connection,
    with_kdf,
)
from smsnodes_hub.config import Settings
from smsnodes_hub.messaging import quotas

_STDIN_HELP = ("read passwords from standard input, one a line (for passwd: the current "
               "password, then the new one)")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    account = commands.add_parser(
        "account", help="manage accounts that own several phones",
        description="An account owns phones, tokens, webhooks and messages. Add its phones "
                    "with `device add NAME --account ACCOUNT`; sends authenticated as the "
                    "account are routed to whichever of its phones can take them.")
    actions = account.add_subparsers(dest="account_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create an account (without phones yet)")
    add.add_argument("name")
    password_options(add, _STDIN_HELP)
    add.set_defaults(handler=_add)

    listing = actions.add_parser("list", help="list accounts and how many phones each has")
    listing.set_defaults(handler=_list)

    passwd = actions.add_parser(
        "passwd", help="change an account's own password (asks for the current one); its "
                       "own tokens end. Its phones keep theirs, but for a phone of the same "
                       "name, which shares its password: it changes with it")
    passwd.add_argument("name")
    password_options(passwd, _STDIN_HELP)
    passwd.set_defaults(handler=_passwd)

    remove = actions.add_parser(
        "remove", help="delete an account with its phones, tokens, webhooks and messages")
    remove.add_argument("name")
    remove.set_defaults(handler=_remove)

    quota = actions.add_parser(
        "quota", help="limit the SMS an account sends a day (UTC) and a month (an SMS is "
                      "one recipient times the text's segments); without limits, show them")
    quota.add_argument("name")
    quota.add_argument("--daily", metavar="N|off", help="SMS a day at most, or off")
    quota.add_argument("--monthly", metavar="N|off", help="SMS a month at most, or off")
    quota.set_defaults(handler=_quota)


def _add(args: argparse.Namespace, settings: Settings) -> int:
    password = new_password(args, "Password for the new account", args.name)

    async def work(conn: asyncpg.Connection, kdf: PasswordKdf) -> None:
        new_id = await owners.create_account(conn, kdf, kdf_params(settings), args.name,
                                             password)
        show_generated(args, password)
        print(f"created account {args.name!r} (id {new_id}); add phones with "
              f"`smsnodes-hub device add NAME --account {args.name}`")

    return with_kdf(settings, work)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: asyncpg.Connection) -> None:
        print_table(await owners.list_accounts(conn),
                    "no accounts yet: add one with `smsnodes-hub account add NAME`", [
                        ("ID", ">5", lambda a: a.id),
                        ("NAME", "<32", lambda a: a.name),
                        ("PHONES", ">6", lambda a: a.phones),
                        ("CREATED", "", lambda a: when(a.created_at)),
                    ])

    return with_connection(settings, work)


def _passwd(args: argparse.Namespace, settings: Settings) -> int:
    old = current_password(args, f"Current password of account {args.name}")
    new = new_password(args, "New password")

    async def work(conn: asyncpg.Connection, kdf: PasswordKdf) -> None:
        shared = await owners.change_account_password(conn, kdf, kdf_params(settings),
                                                      args.name, old, new)
        show_generated(args, new)
        if shared:
            print(f"password changed for account {args.name!r} and phone {args.name!r} (one "
                  "name, one password); their tokens and sessions no longer work")
        else:
            print(f"password changed for account {args.name!r}; its own tokens no longer "
                  "work (its phones keep their passwords and tokens)")

    return with_kdf(settings, work)


def _limit(raw: str | None, current: int | None, flag: str) -> int | None:
    if raw is None:
        return current
    value = raw.strip().lower()
    if value in ("off", "none", "0"):
        return None
    if plain_number(value) and 1 <= int(value) <= quotas.MAX_QUOTA:
        return int(value)
    raise CliError(f"{flag} must be a whole number from 1 to {quotas.MAX_QUOTA}, or off")


def _quota(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: asyncpg.Connection) -> None:
        account_id = await owners.account_id_of(conn, args.name)
        now = await quotas.current(conn, account_id)
        if args.daily is not None or args.monthly is not None:
            daily = _limit(args.daily, now.daily.limit if now.daily else None, "--daily")
            monthly = _limit(args.monthly, now.monthly.limit if now.monthly else None,
                             "--monthly")
            await quotas.set_limits(conn, account_id, daily, monthly)
            now = await quotas.current(conn, account_id)
        for label, period in (("daily", now.daily), ("monthly", now.monthly)):
            shown = (f"{period.used} of {period.limit} used, {period.remaining} left, resets "
                     f"{when(period.resets_at)} UTC" if period else "no limit")
            print(f"account {args.name!r} {label}: {shown}")

    return with_connection(settings, work)


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: asyncpg.Connection) -> None:
        await owners.remove_account(conn, args.name)
        print(f"removed account {args.name!r} with its phones and data")

    return with_connection(settings, work)
