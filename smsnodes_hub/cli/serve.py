"""`smsnodes-hub serve` and `smsnodes-hub migrate`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl

from aiohttp import web

from smsnodes_hub import db
from smsnodes_hub.app import create_app
from smsnodes_hub.cli.common import database
from smsnodes_hub.config import Settings


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = commands.add_parser("serve", help="run the hub")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    migrate.set_defaults(handler=_migrate)


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
