"""`smsnodes-hub token create | list | revoke`: a device's API tokens (Bearer)."""

from __future__ import annotations

import argparse

import asyncpg

from smsnodes_hub.auth import tokens
from smsnodes_hub.auth.crypto import PasswordKdf
from smsnodes_hub.cli.common import (
    CliError,
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
    token = commands.add_parser("token", help="manage API tokens (Bearer) of a device")
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
    listing = actions.add_parser("list", help="list a device's tokens and sessions")
    listing.add_argument("device")
    listing.set_defaults(handler=_list)
    revoke = actions.add_parser("revoke", help="revoke a token or a phone session")
    revoke.add_argument("device")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(handler=_revoke)


def _create(args: argparse.Namespace, settings: Settings) -> int:
    if (args.device is None) == (args.account is None):
        raise UsageError("give either DEVICE or --account ACCOUNT")
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


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: asyncpg.Connection) -> None:
        print_table(await tokens.list_tokens(conn, await device_id(conn, args.device)),
                    f"device {args.device!r} has no tokens", [
                        ("ID", ">6", lambda t: t.id),
                        ("KIND", "<8", lambda t: t.kind),
                        ("NAME", "<24", lambda t: (t.name or "-")[:24]),
                        ("CREATED", "<20", lambda t: when(t.created_at)),
                        ("LAST USED", "", lambda t: when(t.last_used_at)),
                    ])

    return with_connection(settings, work)


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: asyncpg.Connection) -> None:
        if not await tokens.revoke_token(conn, await device_id(conn, args.device), args.id):
            raise CliError(f"device {args.device!r} has no token {args.id}")
        print(f"revoked token {args.id} of {args.device!r}")

    return with_connection(settings, work)
