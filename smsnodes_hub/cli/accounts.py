"""`smsnodes-hub account add | list | passwd | remove`: accounts that own several phones
(docs/accounts.md). Their phones are added with `device add NAME --account ACCOUNT`."""

from __future__ import annotations

import argparse

import asyncpg

from smsnodes_hub.app import kdf_params
from smsnodes_hub.auth import owners
from smsnodes_hub.auth.crypto import PasswordKdf
from smsnodes_hub.cli.common import (
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
        "passwd", help="change an account's own password (asks for the current one); a "
                       "phone of the same name changes with it")
    passwd.add_argument("name")
    password_options(passwd, _STDIN_HELP)
    passwd.set_defaults(handler=_passwd)

    remove = actions.add_parser(
        "remove", help="delete an account with its phones, tokens, webhooks and messages")
    remove.add_argument("name")
    remove.set_defaults(handler=_remove)


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
        await owners.change_account_password(conn, kdf, kdf_params(settings), args.name, old,
                                             new)
        show_generated(args, new)
        print(f"password changed for account {args.name!r}; its own tokens no longer work")

    return with_kdf(settings, work)


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: asyncpg.Connection) -> None:
        await owners.remove_account(conn, args.name)
        print(f"removed account {args.name!r} with its phones and data")

    return with_connection(settings, work)
