"""Command line: `smsnodes-hub serve | migrate | device ... | token ... | webhook ...`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import secrets
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TextIO

from aiohttp import web

from smsnodes_hub import __version__, db, webhooks
from smsnodes_hub.api.pagination import plain_number
from smsnodes_hub.app import create_app, kdf_params
from smsnodes_hub.auth import accounts, tokens
from smsnodes_hub.auth.accounts import Authenticator, CredentialCache
from smsnodes_hub.auth.crypto import PasswordKdf
from smsnodes_hub.cli import admin as cli_admin
from smsnodes_hub.config import ConfigError, Settings, load_settings
from smsnodes_hub.device import store as devices

EXIT_CONFIG = 2


class CliError(Exception):
    """A mistake the user can fix: printed as one line, exit code 1."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_CONFIG
    try:
        settings = _settings(args)
    except ConfigError as exc:
        _fail(exc)
        return EXIT_CONFIG
    logging.basicConfig(
        level=settings.logging.level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args, settings) or 0)
    except (CliError, accounts.AccountError, db.DatabaseUnavailable) as exc:
        _fail(exc)
        return 1
    except KeyboardInterrupt:
        return 130


def _fail(exc: Exception) -> None:
    # One line on stderr, whatever the underlying library put in its message.
    print(f"smsnodes-hub: {' '.join(str(exc).split())}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smsnodes-hub", description=__doc__)
    parser.add_argument("--version", action="version", version=f"smsnodes-hub {__version__}")
    parser.add_argument(
        "--config", type=Path, default=None,
        help="settings file (default: $SMSNODES_CONFIG, else ./config.toml if present)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the hub")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    migrate.set_defaults(handler=_migrate)

    device = commands.add_parser("device", help="manage device (phone) accounts")
    device_commands = device.add_subparsers(dest="device_command", metavar="ACTION",
                                            required=True)
    add = device_commands.add_parser("add", help="create a device account")
    add.add_argument("name")
    _password_source(add)
    add.set_defaults(handler=_device_add)

    listing = device_commands.add_parser("list", help="list device accounts")
    listing.set_defaults(handler=_device_list)

    passwd = device_commands.add_parser(
        "passwd", help="change a device's password (asks for the current one)"
    )
    passwd.add_argument("name")
    _password_source(passwd)
    passwd.add_argument(
        "--reset", action="store_true",
        help="without the current password: starts a new data key and DELETES the "
             "device's stored messages, which nobody could read any more",
    )
    passwd.set_defaults(handler=_device_passwd)

    remove = device_commands.add_parser("remove", help="delete a device and its data")
    remove.add_argument("name")
    remove.set_defaults(handler=_device_remove)

    pace = device_commands.add_parser(
        "pace", help="limit how many SMS per minute the device sends (carriers block SIMs "
                     "that send too fast)",
    )
    pace.add_argument("name")
    pace.add_argument("per_minute", metavar="PER_MINUTE|off")
    pace.set_defaults(handler=_device_pace)

    token = commands.add_parser("token", help="manage API tokens (Bearer) of a device")
    token_commands = token.add_subparsers(dest="token_command", metavar="ACTION",
                                          required=True)
    create = token_commands.add_parser(
        "create", help="create an API token (needs the device password; shown once)"
    )
    create.add_argument("device")
    create.add_argument("--name", help="a label to recognise the token by")
    create.add_argument("--password-stdin", action="store_true",
                        help="read the device password from standard input")
    create.set_defaults(handler=_token_create)
    tlist = token_commands.add_parser("list", help="list a device's tokens and sessions")
    tlist.add_argument("device")
    tlist.set_defaults(handler=_token_list)
    revoke = token_commands.add_parser("revoke", help="revoke a token or a phone session")
    revoke.add_argument("device")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(handler=_token_revoke)

    webhook = commands.add_parser("webhook", help="manage the webhooks of a device's account")
    webhook_commands = webhook.add_subparsers(dest="webhook_command", metavar="ACTION",
                                              required=True)
    wadd = webhook_commands.add_parser(
        "add", help="register a webhook (needs the device password; the signing secret is "
                    "shown once)"
    )
    wadd.add_argument("device")
    wadd.add_argument("url", help="the receiver's https:// address")
    wadd.add_argument("--event", action="append", metavar="EVENT",
                      help=f"an event to send, repeat for several: {', '.join(webhooks.EVENTS)}")
    wadd.add_argument("--password-stdin", action="store_true",
                      help="read the device password from standard input")
    wadd.set_defaults(handler=_webhook_add)
    wlist = webhook_commands.add_parser("list", help="list the webhooks of a device's account")
    wlist.add_argument("device")
    wlist.set_defaults(handler=_webhook_list)
    wupdate = webhook_commands.add_parser(
        "update", help="change a webhook's events or url, re-activate or pause it (as "
                       "PATCH /api/webhooks/{id})"
    )
    wupdate.add_argument("device")
    wupdate.add_argument("id", type=int)
    wupdate.add_argument("--url", help="the receiver's new https:// address")
    wupdate.add_argument("--event", action="append", metavar="EVENT",
                         help="the events to send from now on (replacing the current ones), "
                              "repeat for several")
    wactive = wupdate.add_mutually_exclusive_group()
    wactive.add_argument("--activate", action="store_const", const=True, dest="active",
                         help="re-activate a disabled webhook (what waited is sent at once)")
    wactive.add_argument("--deactivate", action="store_const", const=False, dest="active",
                         help="pause the webhook")
    wupdate.set_defaults(handler=_webhook_update)
    wremove = webhook_commands.add_parser("remove", help="delete a webhook")
    wremove.add_argument("device")
    wremove.add_argument("id", type=int)
    wremove.set_defaults(handler=_webhook_remove)
    cli_admin.add_commands(commands)
    return parser


def _password_source(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--password-stdin", action="store_true",
        help="read the password from standard input (for passwd: the current password on "
             "the first line, the new one on the second)",
    )
    group.add_argument(
        "--generate-password", action="store_true",
        help="generate a strong password and print it once",
    )


def _settings(args: argparse.Namespace) -> Settings:
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
    try:
        with db.embedded_postgres(Path(settings.database.data_dir).resolve()) as dsn:
            yield dsn
    except db.DatabaseUnavailable:
        raise
    except Exception as exc:  # initdb/pg_ctl failures: one clear line, not a trace
        if isinstance(exc, CliError | accounts.AccountError):
            raise
        raise db.DatabaseUnavailable(f"could not start the embedded PostgreSQL: {exc}") from exc


def _with_connection(
    settings: Settings, work: Callable[[object], Awaitable[int | None]]
) -> int:
    with database(settings) as dsn:

        async def run() -> int | None:
            conn = await db.connect(dsn)
            try:
                await db.migrate(conn)
                return await work(conn)
            finally:
                await conn.close()

        return int(asyncio.run(run()) or 0)


# -- serve ----------------------------------------------------------------------------------


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as dsn:
        asyncio.run(_run_server(settings, dsn))
    return 0


async def _run_server(settings: Settings, dsn: str) -> None:
    app = create_app(settings, dsn)
    runner = web.AppRunner(
        app, shutdown_timeout=settings.server.shutdown_timeout, handle_signals=False,
        access_log=None,
    )
    await runner.setup()
    ssl_context = None
    if settings.tls:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(settings.server.tls_cert, settings.server.tls_key)
    site = web.TCPSite(runner, settings.server.host, settings.server.port, ssl_context=ssl_context)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await site.start()
        scheme = "https" if ssl_context else "http"
        for sock in site._server.sockets if site._server else []:
            host, port = sock.getsockname()[:2]
            shown = "localhost" if host in ("0.0.0.0", "::", "127.0.0.1") else host  # noqa: S104
            print(f"smsnodes-hub listening on {scheme}://{shown}:{port} "
                  f"(health: {scheme}://{shown}:{port}/api/health)", flush=True)
            break
        await stop.wait()
        print("smsnodes-hub stopping ...", flush=True)
    finally:
        await runner.cleanup()


# -- migrate ----------------------------------------------------------------------------------


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as dsn:

        async def run() -> None:
            conn = await db.connect(dsn)
            try:
                applied = await db.migrate(conn)
            finally:
                await conn.close()
            if applied:
                for m in applied:
                    print(f"applied {m.version:03d}_{m.name}")
            else:
                print("database is up to date")

        asyncio.run(run())
    return 0


# -- device -----------------------------------------------------------------------------------


def _read_password(args: argparse.Namespace, prompt: str, stdin: TextIO) -> str:
    """The new password; a generated one is printed by the caller once it is in use."""
    if args.generate_password:
        return secrets.token_urlsafe(18)
    if args.password_stdin:
        line = stdin.readline()
        if not line:
            raise CliError("no password on standard input")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for the password: use --password-stdin or "
                       "--generate-password")
    first = getpass.getpass(f"{prompt}: ")
    accounts.check_password(first)
    if getpass.getpass(f"{prompt} (again): ") != first:
        raise CliError("the passwords do not match")
    return first


def _kdf(settings: Settings) -> PasswordKdf:
    return PasswordKdf(settings.security.kdf_concurrency)


def _device_add(args: argparse.Namespace, settings: Settings) -> int:
    accounts.check_username(args.name)
    password = _read_password(args, "Password for the new device", sys.stdin)
    accounts.check_password(password)
    kdf = _kdf(settings)

    async def work(conn: object) -> None:
        device_id = await accounts.create_device(
            conn, kdf, kdf_params(settings), args.name, password  # type: ignore[arg-type]
        )
        # Shown only once the account exists: a failed add must not print a dead password.
        if args.generate_password:
            print(f"generated password (shown only now): {password}")
        print(f"created device {args.name!r} (id {device_id})")

    try:
        return _with_connection(settings, work)
    finally:
        kdf.close()


def _device_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: object) -> None:
        devices = await accounts.list_devices(conn)  # type: ignore[arg-type]
        if not devices:
            print("no devices yet: add one with `smsnodes-hub device add NAME`")
            return
        print(f"{'ID':>5}  {'NAME':<32}  {'CREATED':<20}  LAST SEEN")
        for d in devices:
            created = d.created_at.strftime("%Y-%m-%d %H:%M:%S")
            seen = d.last_seen_at.strftime("%Y-%m-%d %H:%M:%S") if d.last_seen_at else "never"
            print(f"{d.id:>5}  {d.username:<32}  {created:<20}  {seen}")

    return _with_connection(settings, work)


def _device_passwd(args: argparse.Namespace, settings: Settings) -> int:
    if args.reset:
        old = None
    elif args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CliError("no current password on standard input")
        old = line.rstrip("\r\n")
    elif not sys.stdin.isatty():
        raise CliError("the current password is needed: give it on the first line of "
                       "--password-stdin, or use --reset")
    else:
        old = getpass.getpass("Current password: ")
    new = _read_password(args, "New password", sys.stdin)
    accounts.check_password(new)
    kdf = _kdf(settings)

    async def work(conn: object) -> None:
        await accounts.change_password(
            conn, kdf, kdf_params(settings), args.name, old, new  # type: ignore[arg-type]
        )
        if args.generate_password:
            print(f"generated password (shown only now): {new}")
        note = " (stored messages deleted: new data key)" if old is None else ""
        print(f"password changed for {args.name!r}; its tokens no longer work{note}")

    try:
        return _with_connection(settings, work)
    finally:
        kdf.close()


def _device_remove(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: object) -> None:
        await accounts.remove_device(conn, args.name)  # type: ignore[arg-type]
        print(f"removed device {args.name!r}")

    return _with_connection(settings, work)


async def _device_id(conn: object, name: str) -> int:
    device_id = await conn.fetchval(  # type: ignore[attr-defined]
        "SELECT id FROM devices WHERE username = $1", name
    )
    if device_id is None:
        raise CliError(f"no device named {name!r}")
    return int(device_id)


def _device_pace(args: argparse.Namespace, settings: Settings) -> int:
    raw = args.per_minute.strip().lower()
    if raw in ("off", "0", "none"):
        per_minute = None
    elif plain_number(raw) and 1 <= int(raw) <= devices.MAX_PACE:
        per_minute = int(raw)
    else:
        raise CliError(f"PER_MINUTE must be a whole number from 1 to {devices.MAX_PACE}, "
                       "or off")

    async def work(conn: object) -> None:
        await devices.set_pace(conn, await _device_id(conn, args.name),  # type: ignore[arg-type]
                               per_minute)
        shown = f"at most {per_minute} SMS per minute" if per_minute else "no pacing"
        print(f"device {args.name!r}: {shown}")

    return _with_connection(settings, work)


# -- token ------------------------------------------------------------------------------------


def _token_create(args: argparse.Namespace, settings: Settings) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password of {args.device}: ")
    else:
        raise CliError("the device password is needed: use --password-stdin")
    try:
        tokens.check_name(args.name)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    kdf = _kdf(settings)

    async def work(conn: object) -> None:
        authenticator = Authenticator(kdf, kdf_params(settings), CredentialCache(0))
        principal = await authenticator.login(conn, args.device, password)  # type: ignore[arg-type]
        if principal is None:
            raise CliError("wrong device name or password")
        info, token = await tokens.create_api_token(conn, principal, args.name)  # type: ignore[arg-type]
        print(f"created token {info.id} for {args.device!r} (shown only now):")
        print(token)

    try:
        return _with_connection(settings, work)
    except tokens.TokenError as exc:
        raise CliError(str(exc)) from None
    finally:
        kdf.close()


def _token_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: object) -> None:
        found = await tokens.list_tokens(conn, await _device_id(conn, args.device))  # type: ignore[arg-type]
        if not found:
            print(f"device {args.device!r} has no tokens")
            return
        print(f"{'ID':>6}  {'KIND':<8}  {'NAME':<24}  {'CREATED':<20}  LAST USED")
        for t in found:
            created = t.created_at.strftime("%Y-%m-%d %H:%M:%S")
            used = t.last_used_at.strftime("%Y-%m-%d %H:%M:%S") if t.last_used_at else "never"
            print(f"{t.id:>6}  {t.kind:<8}  {(t.name or '-')[:24]:<24}  {created:<20}  {used}")

    return _with_connection(settings, work)


def _token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: object) -> None:
        device_id = await _device_id(conn, args.device)
        if not await tokens.revoke_token(conn, device_id, args.id):  # type: ignore[arg-type]
            raise CliError(f"device {args.device!r} has no token {args.id}")
        print(f"revoked token {args.id} of {args.device!r}")

    return _with_connection(settings, work)


# -- webhook ----------------------------------------------------------------------------------


def _webhook_add(args: argparse.Namespace, settings: Settings) -> int:
    if not args.event:
        raise CliError(f"give at least one --event: {', '.join(webhooks.EVENTS)}")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password of {args.device}: ")
    else:
        raise CliError("the device password is needed: use --password-stdin")
    kdf = _kdf(settings)

    async def work(conn: object) -> None:
        events = webhooks.check_events(args.event)
        url = await webhooks.check_url(args.url, settings.webhooks)
        # The password opens the account's data key, which seals the signing secret.
        authenticator = Authenticator(kdf, kdf_params(settings), CredentialCache(0))
        principal = await authenticator.login(conn, args.device, password)  # type: ignore[arg-type]
        if principal is None:
            raise CliError("wrong device name or password")
        hook, secret = await webhooks.create(conn, principal, url, events)  # type: ignore[arg-type]
        print(f"created webhook {hook.id} for {args.device!r}: {url} ({', '.join(events)})")
        print("signing secret (shown only now):")
        print(secret)

    try:
        return _with_connection(settings, work)
    except webhooks.WebhookError as exc:
        raise CliError(str(exc)) from None
    finally:
        kdf.close()


async def _account_id(conn: object, name: str) -> int:
    account_id = await conn.fetchval(  # type: ignore[attr-defined]
        "SELECT account_id FROM devices WHERE username = $1", name
    )
    if account_id is None:
        raise CliError(f"no device named {name!r}")
    return int(account_id)


def _webhook_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: object) -> None:
        found = await webhooks.list_webhooks(conn, await _account_id(conn, args.device))  # type: ignore[arg-type]
        if not found:
            print(f"device {args.device!r} has no webhooks")
            return
        print(f"{'ID':>6}  {'ACTIVE':<6}  {'EVENTS':<40}  URL")
        for hook in found:
            active = "yes" if hook.active else "no"
            print(f"{hook.id:>6}  {active:<6}  {','.join(hook.events):<40}  {hook.url}")
            if hook.disabled_reason:
                print(f"{'':>6}  disabled: {hook.disabled_reason}")

    return _with_connection(settings, work)


def _webhook_update(args: argparse.Namespace, settings: Settings) -> int:
    if args.url is None and args.event is None and args.active is None:
        raise CliError("nothing to change: give --url, --event, --activate or --deactivate")

    async def work(conn: object) -> None:
        account_id = await _account_id(conn, args.device)
        events = webhooks.check_events(args.event) if args.event is not None else None
        url = (await webhooks.check_url(args.url, settings.webhooks)
               if args.url is not None else None)
        hook = await webhooks.update_webhook(conn, account_id, args.id, url=url,  # type: ignore[arg-type]
                                             events=events, active=args.active)
        if hook is None:
            raise CliError(f"device {args.device!r} has no webhook {args.id}")
        state = "active" if hook.active else f"inactive: {hook.disabled_reason}"
        print(f"updated webhook {hook.id} of {args.device!r}: {hook.url} "
              f"({', '.join(hook.events)}), {state}")

    try:
        return _with_connection(settings, work)
    except webhooks.WebhookError as exc:
        raise CliError(str(exc)) from None


def _webhook_remove(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: object) -> None:
        account_id = await _account_id(conn, args.device)
        if not await webhooks.delete_webhook(conn, account_id, args.id):  # type: ignore[arg-type]
            raise CliError(f"device {args.device!r} has no webhook {args.id}")
        print(f"removed webhook {args.id} of {args.device!r}")

    return _with_connection(settings, work)
