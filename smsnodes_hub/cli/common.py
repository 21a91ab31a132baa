"""What every command shares: errors and exit codes, settings, the database, passwords."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from smsnodes_hub import db, embedded
from smsnodes_hub.app import kdf_params
from smsnodes_hub.auth import accounts, owners
from smsnodes_hub.auth.accounts import Principal
from smsnodes_hub.auth.crypto import PasswordKdf
from smsnodes_hub.auth.logins import Authenticator, CredentialCache
from smsnodes_hub.config import Settings, load_settings

EXIT_CONFIG = 2

Work = Callable[[asyncpg.Connection], Awaitable[None]]
KdfWork = Callable[[asyncpg.Connection, PasswordKdf], Awaitable[None]]


class CliError(Exception):
    """A mistake the user can fix: printed as one line, exit code 1."""


class UsageError(CliError):
    """The command cannot run as it was given (options, input, a busy port): exit code 2."""


def fail(exc: Exception) -> None:
    # One line on stderr, whatever the underlying library put in its message.
    print(f"smsnodes-hub: {' '.join(str(exc).split())}", file=sys.stderr)


def settings_for(args: argparse.Namespace) -> Settings:
    path = args.config
    if path is None and os.environ.get("SMSNODES_CONFIG"):
        path = Path(os.environ["SMSNODES_CONFIG"])
    if path is None and Path("config.toml").is_file():
        path = Path("config.toml")
    environ = dict(os.environ)
    if getattr(args, "host", None):
        environ["SMSNODES_SERVER_HOST"] = args.host
    if getattr(args, "port", None) is not None:
        environ["SMSNODES_SERVER_PORT"] = str(args.port)
    return load_settings(path, environ)


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The configured database, or the embedded one under `database.data_dir`."""
    if settings.database.url:
        yield settings.database.url
        return
    with contextlib.ExitStack() as stack:
        try:
            dsn = stack.enter_context(
                embedded.embedded_postgres(Path(settings.database.data_dir).resolve()))
        except db.DatabaseUnavailable:
            raise
        except Exception as exc:  # initdb/pg_ctl failures: one clear line, not a trace
            raise db.DatabaseUnavailable(
                f"could not start the embedded PostgreSQL: {exc}") from exc
        # Only the start is "could not start": what the caller raises passes as it is.
        yield dsn


def with_connection(settings: Settings, work: Work,
                    errors: tuple[type[Exception], ...] = ()) -> int:
    """Run `work` on one connection to the migrated database; `errors` become CliErrors."""
    with database(settings) as dsn:

        async def run() -> None:
            conn = await db.connect(dsn)
            try:
                await db.migrate(conn)
                await work(conn)
            finally:
                await conn.close()

        try:
            asyncio.run(run())
        except errors as exc:
            raise CliError(str(exc)) from None
    return 0


def with_kdf(settings: Settings, work: KdfWork,
             errors: tuple[type[Exception], ...] = ()) -> int:
    """`with_connection` for work that hashes or checks passwords."""
    kdf = PasswordKdf(settings.security.kdf_concurrency)

    async def with_it(conn: asyncpg.Connection) -> None:
        await work(conn, kdf)

    try:
        return with_connection(settings, with_it, errors)
    finally:
        kdf.close()


# -- passwords --------------------------------------------------------------------------------


def password_options(parser: argparse.ArgumentParser, stdin_help: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--password-stdin", action="store_true", help=stdin_help)
    group.add_argument("--generate-password", action="store_true",
                       help="generate a strong password and print it once")


def new_password(args: argparse.Namespace, prompt: str, username: str | None = None) -> str:
    """A new account's (when `username` is given, checked first) or a new password, checked;
    a generated one is printed by the caller, with `show_generated`, once it is in use."""
    if username is not None:
        accounts.check_username(username)
    return accounts.check_password(_read_password(args, prompt))


def _read_password(args: argparse.Namespace, prompt: str) -> str:
    if args.generate_password:
        return secrets.token_urlsafe(18)
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CliError("no password on standard input")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UsageError(_NO_TERMINAL)
    first = ask(f"{prompt}: ")
    accounts.check_password(first)
    if ask(f"{prompt} (again): ") != first:
        raise CliError("the passwords do not match")
    return first


_NO_TERMINAL = ("no terminal to ask for the password: pipe it in with --password-stdin "
                "(or use --generate-password)")


def ask(prompt: str) -> str:
    """getpass, with an end of input (a pipe, Ctrl-D) told as a usage error, not a trace."""
    try:
        return getpass.getpass(prompt)
    except EOFError:
        raise UsageError(_NO_TERMINAL) from None


def device_password(args: argparse.Namespace) -> str:
    """The password of an existing device (`args.device`), to open its data key."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if sys.stdin.isatty():
        return ask(f"Password of {args.device}: ")
    raise CliError("the device password is needed: use --password-stdin")


def current_password(args: argparse.Namespace, prompt: str) -> str:
    """An existing password (an account's, a phone's): the next line of standard input with
    --password-stdin, else asked at the terminal."""
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CliError(f"no password on standard input for: {prompt}")
        return line.rstrip("\r\n")
    if sys.stdin.isatty():
        return ask(f"{prompt}: ")
    raise UsageError(_NO_TERMINAL)


async def login_account(conn: asyncpg.Connection, kdf: PasswordKdf, settings: Settings,
                        name: str, password: str) -> Principal:
    """The account itself (not the phone of that name), by its own password."""
    principal = await owners.login_account(conn, kdf, kdf_params(settings), name, password)
    if principal is None:
        raise CliError("wrong account name or password")
    return principal


def show_generated(args: argparse.Namespace, password: str) -> None:
    # Called only once the account exists: a failed command must not print a dead password.
    if args.generate_password:
        print(f"generated password (shown only now): {password}")


async def login(conn: asyncpg.Connection, kdf: PasswordKdf, settings: Settings, device: str,
                password: str) -> Principal:
    authenticator = Authenticator(kdf, kdf_params(settings), CredentialCache(0))
    principal = await authenticator.login(conn, device, password)
    if principal is None:
        raise CliError("wrong device name or password")
    return principal


# -- lookups and output -----------------------------------------------------------------------


async def device_id(conn: asyncpg.Connection, name: str) -> int:
    return await _device_column(conn, "id", name)


async def account_id(conn: asyncpg.Connection, name: str) -> int:
    return await _device_column(conn, "account_id", name)


async def _device_column(conn: asyncpg.Connection, column: str, name: str) -> int:
    value = await conn.fetchval(f"SELECT {column} FROM devices WHERE username = $1", name)  # noqa: S608 - a fixed column name
    if value is None:
        raise CliError(f"no device named {name!r}")
    return int(value)


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "never"


Column = tuple[str, str, Callable[[Any], object]]  # heading, format spec, the row's value


def print_table(rows: Sequence[Any], empty: str, columns: Sequence[Column]) -> None:
    """Aligned columns two spaces apart (the last one as wide as it is), or `empty`."""
    if not rows:
        print(empty)
        return
    print("  ".join(f"{heading:{spec}}" for heading, spec, _ in columns))
    for row in rows:
        print("  ".join(f"{value(row):{spec}}" for _, spec, value in columns))
