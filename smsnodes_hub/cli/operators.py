"""`smsnodes-hub admin add | list | remove | passwd`: operator accounts for the dashboard.

Operators are not device accounts: they hold no data key, so a password reset loses nothing
and needs no current password (whoever runs this command already controls the server)."""

from __future__ import annotations

import argparse

import asyncpg

from smsnodes_hub.app import kdf_params
from smsnodes_hub.auth.crypto import PasswordKdf
from smsnodes_hub.cli.common import (
    new_password,
    password_options,
    print_table,
    show_generated,
    when,
    with_connection,
    with_kdf,
)
from smsnodes_hub.config import Settings
from smsnodes_hub.dashboard import operators

_STDIN_HELP = "read the password from the first line of standard input"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = commands.add_parser("admin", help="manage dashboard operators (/dashboard)")
    actions = admin.add_subparsers(dest="admin_command", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="create an operator account")
    add.add_argument("name")
    password_options(add, _STDIN_HELP)
    add.set_defaults(handler=_add)

    listing = actions.add_parser("list", help="list operator accounts")
    listing.set_defaults(handler=_list)

    remove = actions.add_parser("remove", help="delete an operator (their logins end)")
    remove.add_argument("name")
    remove.set_defaults(handler=_remove)

    passwd = actions.add_parser(
        "passwd", help="set a new password for an operator (their logins end)"
    )
    passwd.add_argument("name")
    password_options(passwd, _STDIN_HELP)
    passwd.set_defaults(handler=_passwd)


def _add(args: argparse.Namespace, settings: Settings) -> int:
    password = new_password(args, "Password for the new operator", args.name)

    async def work(conn: asyncpg.Connection, kdf: PasswordKdf) -> None:
        await operators.create(conn, kdf, kdf_params(settings), args.name, password)
        show_generated(args, password)
        print(f"created operator {args.name!r}: log in at /dashboard")

    return with_kdf(settings, work)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: asyncpg.Connection) -> None:
        print_table(await operators.list_all(conn),
                    "no operators yet: add one with `smsnodes-hub admin add NAME`", [
                        ("NAME", "<32", lambda row: row["username"]),
                        ("CREATED", "<20", lambda row: when(row["created_at"])),
                        ("LAST LOGIN", "<20", lambda row: when(row["last_login_at"])),
                        ("SESSIONS", "", lambda row: row["sessions"]),
                    ])

    return with_connection(settings, work)


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: asyncpg.Connection) -> None:
        await operators.remove(conn, args.name)
        print(f"removed operator {args.name!r}; their dashboard logins ended")

    return with_connection(settings, work)


def _passwd(args: argparse.Namespace, settings: Settings) -> int:
    password = new_password(args, "New password")

    async def work(conn: asyncpg.Connection, kdf: PasswordKdf) -> None:
        ended = await operators.change_password(conn, kdf, kdf_params(settings), args.name,
                                                password)
        show_generated(args, password)
        print(f"password changed for operator {args.name!r}; "
              f"{ended} dashboard login{'' if ended == 1 else 's'} ended")

    return with_kdf(settings, work)
