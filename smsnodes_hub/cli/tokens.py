"""`smsnodes-hub token create | list | revoke`: API tokens (Bearer) of a device, or with
`--account` the account's own (routed) tokens."""

from __future__ import annotations

import argparse

import asyncpg

from smsnodes_hub.auth import owners, tokens
from smsnodes_hub.auth.crypto import PasswordKdf
from smsnodes_hub.cli.common import (
    CliError,
    Column,
    UsageError,
    current_password,
    device_id,
    device_password,
    login,
    login_account,
    print_table,
    when,
    with_connection,
    with_kdf,
)
from smsnodes_hub.config import Settings


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser("token",
                                help="manage API tokens (Bearer) of a device or an account")
    actions = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create", help="create an API token (needs the device password; shown once); with "
                       "--account instead of DEVICE, a token of the account, whose sends "
                       "are routed to its phones (needs the account's password)"
    )
    create.add_argument("device", nargs="?", metavar="DEVICE")
    create.add_argument("--account", metavar="ACCOUNT",
                        help="create the token for this account instead of for one phone")
    create.add_argument("--name", help="a label to recognise the token by")
    create.add_argument("--password-stdin", action="store_true",
                        help="read the device's (or the account's) password from standard "
                             "input")
    create.set_defaults(handler=_create)
    listing = actions.add_parser(
        "list", help="list a device's tokens and sessions; with --account instead of "
                     "DEVICE, the account's own tokens (routed; its phones' are listed "
                     "by phone)")
    listing.add_argument("device", nargs="?", metavar="DEVICE", help="the phone")
    listing.add_argument("--account", metavar="ACCOUNT",
                         help="list this account's own tokens instead of a phone's")
    listing.set_defaults(handler=_list)
    revoke = actions.add_parser(
        "revoke", help="revoke a token or a phone session of DEVICE; with --account "
                       "instead of DEVICE, one of the account's own tokens")
    revoke.add_argument("device", nargs="?", metavar="DEVICE", help="the phone")
    revoke.add_argument("id", type=int, metavar="ID", help="the token's id (`token list`)")
    revoke.add_argument("--account", metavar="ACCOUNT",
                        help="revoke a token of this account instead of a phone's")
    revoke.set_defaults(handler=_revoke)


def _holder(args: argparse.Namespace) -> None:
    if (args.device is None) == (args.account is None):
        raise UsageError("give either DEVICE or --account ACCOUNT")


def _create(args: argparse.Namespace, settings: Settings) -> int:
    _holder(args)
    if args.account is not None:
        password = current_password(args, f"Password of account {args.account}")
    else:
        password = device_password(args)
    try:
        tokens.check_name(args.name)
    except ValueError as exc:
        raise CliError(str(exc)) from None

    async def work(conn: asyncpg.Connection, kdf: PasswordKdf) -> None:
        if args.account is not None:
            principal = await login_account(conn, kdf, settings, args.account, password)
            whose = f"account {args.account!r}"
        else:
            principal = await login(conn, kdf, settings, args.device, password)
            whose = repr(args.device)
        info, token = await tokens.create_api_token(conn, principal, args.name)
        print(f"created token {info.id} for {whose} (shown only now):")
        print(token)

    return with_kdf(settings, work, errors=(tokens.TokenError,))


_COLUMNS: list[Column] = [
    ("ID", ">6", lambda t: t.id),
    ("KIND", "<8", lambda t: t.kind),
    ("NAME", "<24", lambda t: (t.name or "-")[:24]),
    ("CREATED", "<20", lambda t: when(t.created_at)),
    ("LAST USED", "", lambda t: when(t.last_used_at)),
]


def _list(args: argparse.Namespace, settings: Settings) -> int:
    _holder(args)

    async def work(conn: asyncpg.Connection) -> None:
        if args.account is not None:
            found = await tokens.list_tokens(
                conn, None, await owners.account_id_of(conn, args.account), own=True)
            empty = f"account {args.account!r} has no tokens of its own"
        else:
            found = await tokens.list_tokens(conn, await device_id(conn, args.device))
            empty = f"device {args.device!r} has no tokens"
        print_table(found, empty, _COLUMNS)

    return with_connection(settings, work)


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    _holder(args)

    async def work(conn: asyncpg.Connection) -> None:
        if args.account is not None:
            whose = f"account {args.account!r}"
            done = await tokens.revoke_token(
                conn, None, args.id, await owners.account_id_of(conn, args.account), own=True)
        else:
            whose = f"device {args.device!r}"
            done = await tokens.revoke_token(conn, await device_id(conn, args.device), args.id)
        if not done:  # another account's, a phone's, or none: the same words
            raise CliError(f"{whose} has no token {args.id}")
        print(f"revoked token {args.id} of {whose}")

    return with_connection(settings, work)
