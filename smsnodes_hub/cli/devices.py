"""`smsnodes-hub device add | list | passwd | remove | pace`: phones (and an account of the
same name, for `device add NAME` without `--account`)."""

from __future__ import annotations

import argparse
import sys

import asyncpg

from smsnodes_hub.api.pagination import plain_number
from smsnodes_hub.app import kdf_params
from smsnodes_hub.auth import accounts, owners
from smsnodes_hub.auth.crypto import PasswordKdf
from smsnodes_hub.cli.common import (
    CliError,
    ask,
    current_password,
    device_id,
    login_account,
    new_password,
    password_options,
    print_table,
    show_generated,
    when,
    with_connection,
    with_kdf,
)
from smsnodes_hub.config import Settings
from smsnodes_hub.device import store as devices

_STDIN_HELP = ("read the password from standard input (for passwd: the current password on "
               "the first line, the new one on the second)")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    device = commands.add_parser("device", help="manage device (phone) accounts")
    actions = device.add_subparsers(dest="device_command", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add", help="create a phone: with --account, another phone of that account (asks "
                    "the account's password, then the phone's); without, a new account of "
                    "the same name")
    add.add_argument("name")
    add.add_argument("--account", metavar="ACCOUNT",
                     help="the account that owns the new phone (its password opens the data "
                          "key the phone's password must wrap)")
    password_options(add, _STDIN_HELP + "; with --account: the account's password on the "
                     "first line, the phone's on the second")
    add.set_defaults(handler=_add)

    listing = actions.add_parser("list", help="list phones (`account list` lists accounts)")
    listing.set_defaults(handler=_list)

    passwd = actions.add_parser(
        "passwd", help="change a phone's password (asks for the current one, or with "
                       "--account for the account's); a phone that shares its account's "
                       "name shares its password, and the account's changes with it")
    passwd.add_argument("name")
    password_options(passwd, _STDIN_HELP + "; with --account: the account's password on "
                     "the first line")
    how = passwd.add_mutually_exclusive_group()
    how.add_argument(
        "--account", metavar="ACCOUNT",
        help="the phone's password is lost: set a new one with the password of ACCOUNT, "
             "the phone's account, which opens the data key; nothing is deleted",
    )
    how.add_argument(
        "--reset", action="store_true",
        help="without any password: starts a new data key and DELETES the account's "
             "stored messages, which nobody could read any more; only for a phone that is "
             "its account's namesake and only phone (otherwise use --account)",
    )
    passwd.set_defaults(handler=_passwd)

    remove = actions.add_parser("remove", help="delete a device and its data")
    remove.add_argument("name")
    remove.set_defaults(handler=_remove)

    pace = actions.add_parser(
        "pace", help="limit how many SMS per minute the device sends (carriers block SIMs "
                     "that send too fast)",
    )
    pace.add_argument("name")
    pace.add_argument("per_minute", metavar="PER_MINUTE|off")
    pace.set_defaults(handler=_pace)


def _add(args: argparse.Namespace, settings: Settings) -> int:
    if args.account is not None:
        return _add_to_account(args, settings)
    password = new_password(args, "Password for the new device", args.name)

    async def work(conn: asyncpg.Connection, kdf: PasswordKdf) -> None:
        new_id = await accounts.create_device(conn, kdf, kdf_params(settings), args.name,
                                              password)
        show_generated(args, password)
        print(f"created device {args.name!r} (id {new_id})")

    return with_kdf(settings, work)


def _add_to_account(args: argparse.Namespace, settings: Settings) -> int:
    accounts.check_username(args.name)
    owner_password = current_password(args, f"Password of account {args.account}")
    password = new_password(args, "Password for the new phone")

    async def work(conn: asyncpg.Connection, kdf: PasswordKdf) -> None:
        owner = await login_account(conn, kdf, settings, args.account, owner_password)
        new_id = await owners.add_phone(conn, kdf, kdf_params(settings), owner, args.name,
                                        password)
        show_generated(args, password)
        print(f"created phone {args.name!r} (id {new_id}) of account {args.account!r}")

    return with_kdf(settings, work)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: asyncpg.Connection) -> None:
        print_table(await accounts.list_devices(conn),
                    "no devices yet: add one with `smsnodes-hub device add NAME`", [
                        ("ID", ">5", lambda d: d.id),
                        ("NAME", "<32", lambda d: d.username),
                        ("CREATED", "<20", lambda d: when(d.created_at)),
                        ("LAST SEEN", "", lambda d: when(d.last_seen_at)),
                    ])

    return with_connection(settings, work)


def _passwd(args: argparse.Namespace, settings: Settings) -> int:
    if args.account is not None:
        return _passwd_by_account(args, settings)
    old: str | None
    if args.reset:
        old = None
    elif args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CliError("no current password on standard input")
        old = line.rstrip("\r\n")
    elif not sys.stdin.isatty():
        raise CliError("the current password is needed: give it on the first line of "
                       "--password-stdin, or use --account ACCOUNT (or --reset)")
    else:
        old = ask("Current password: ")
    new = new_password(args, "New password")

    async def work(conn: asyncpg.Connection, kdf: PasswordKdf) -> None:
        shared = await accounts.change_password(conn, kdf, kdf_params(settings), args.name,
                                                old, new)
        show_generated(args, new)
        note = "; stored messages deleted: new data key" if old is None else ""
        print(_changed(args.name, shared) + note)

    return with_kdf(settings, work)


def _passwd_by_account(args: argparse.Namespace, settings: Settings) -> int:
    owner_password = current_password(args, f"Password of account {args.account}")
    new = new_password(args, "New password for the phone")

    async def work(conn: asyncpg.Connection, kdf: PasswordKdf) -> None:
        owner = await login_account(conn, kdf, settings, args.account, owner_password)
        shared = await owners.set_phone_password(conn, kdf, kdf_params(settings), owner,
                                                 args.name, new)
        show_generated(args, new)
        print(_changed(args.name, shared) + "; stored messages kept")

    return with_kdf(settings, work)


def _changed(name: str, shared: bool) -> str:
    """What a phone's password change did, the account's too when it shares the name."""
    if shared:
        return (f"password changed for phone {name!r} and account {name!r} (one name, one "
                "password); their tokens and sessions no longer work")
    return f"password changed for phone {name!r}; its tokens and sessions no longer work"


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: asyncpg.Connection) -> None:
        await accounts.remove_device(conn, args.name)
        print(f"removed device {args.name!r}")

    return with_connection(settings, work)


def _pace(args: argparse.Namespace, settings: Settings) -> int:
    raw = args.per_minute.strip().lower()
    per_minute: int | None
    if raw in ("off", "0", "none"):
        per_minute = None
    elif plain_number(raw) and 1 <= int(raw) <= devices.MAX_PACE:
        per_minute = int(raw)
    else:
        raise CliError(f"PER_MINUTE must be a whole number from 1 to {devices.MAX_PACE}, "
                       "or off")

    async def work(conn: asyncpg.Connection) -> None:
        await devices.set_pace(conn, await device_id(conn, args.name), per_minute)
        shown = f"at most {per_minute} SMS per minute" if per_minute else "no pacing"
        print(f"device {args.name!r}: {shown}")

    return with_connection(settings, work)
