"""`smsnodes-hub admin add | list | remove | passwd`: operator accounts for the dashboard.

Wired into the main parser by `cli._parser()` through `add_commands`. Operators are not
device accounts: they hold no data key, so a password reset loses nothing and needs no
current password (whoever runs this command already controls the server)."""

from __future__ import annotations

import argparse
import sys

from smsnodes_hub.app import kdf_params
from smsnodes_hub.auth.accounts import check_password, check_username
from smsnodes_hub.cli import (
    main as cli,  # the module, not names from it: cli imports this module while loading
)
from smsnodes_hub.config import Settings
from smsnodes_hub.dashboard import operators


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    admin = subparsers.add_parser("admin", help="manage dashboard operators (/dashboard)")
    actions = admin.add_subparsers(dest="admin_command", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="create an operator account")
    add.add_argument("name")
    _password_options(add)
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
    _password_options(passwd)
    passwd.set_defaults(handler=_passwd)


def _password_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of standard input")
    group.add_argument("--generate-password", action="store_true",
                       help="generate a strong password and print it once")


def _add(args: argparse.Namespace, settings: Settings) -> int:
    check_username(args.name)
    password = cli._read_password(args, "Password for the new operator", sys.stdin)
    check_password(password)
    kdf = cli._kdf(settings)

    async def work(conn: object) -> None:
        await operators.create(conn, kdf, kdf_params(settings), args.name,  # type: ignore[arg-type]
                               password)
        # Printed only once the account exists: a failed add must not show a dead password.
        if args.generate_password:
            print(f"generated password (shown only now): {password}")
        print(f"created operator {args.name!r}: log in at /dashboard")

    try:
        return cli._with_connection(settings, work)
    finally:
        kdf.close()


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: object) -> None:
        rows = await operators.list_all(conn)  # type: ignore[arg-type]
        if not rows:
            print("no operators yet: add one with `smsnodes-hub admin add NAME`")
            return
        print(f"{'NAME':<32}  {'CREATED':<20}  {'LAST LOGIN':<20}  SESSIONS")
        for row in rows:
            created = row["created_at"].strftime("%Y-%m-%d %H:%M:%S")
            last = row["last_login_at"]
            seen = last.strftime("%Y-%m-%d %H:%M:%S") if last else "never"
            print(f"{row['username']:<32}  {created:<20}  {seen:<20}  {row['sessions']}")

    return cli._with_connection(settings, work)


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: object) -> None:
        await operators.remove(conn, args.name)  # type: ignore[arg-type]
        print(f"removed operator {args.name!r}; their dashboard logins ended")

    return cli._with_connection(settings, work)


def _passwd(args: argparse.Namespace, settings: Settings) -> int:
    password = cli._read_password(args, "New password", sys.stdin)
    check_password(password)
    kdf = cli._kdf(settings)

    async def work(conn: object) -> None:
        ended = await operators.change_password(
            conn, kdf, kdf_params(settings), args.name, password  # type: ignore[arg-type]
        )
        if args.generate_password:
            print(f"generated password (shown only now): {password}")
        print(f"password changed for operator {args.name!r}; "
              f"{ended} dashboard login{'' if ended == 1 else 's'} ended")

    try:
        return cli._with_connection(settings, work)
    finally:
        kdf.close()
