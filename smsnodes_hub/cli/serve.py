"""`smsnodes-hub serve` and `smsnodes-hub migrate`.

`serve` starts in an order that cannot hang or leave things behind: it takes the HTTP
port first (a busy port is answered at once, before any database starts), then the
database, then the hub. SIGINT or SIGTERM at any point stops what was started, the embedded
PostgreSQL included; a watchdog bounds the stop, and a second signal cuts it short."""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import TypeVar

from aiohttp import web

from smsnodes_hub import db, embedded
from smsnodes_hub.app import create_app
from smsnodes_hub.cli import collector
from smsnodes_hub.cli.common import UsageError, database
from smsnodes_hub.cli.workers import inherited_sockets, supervise, worker_count
from smsnodes_hub.config import Settings

START_TIMEOUT = 120.0  # the hub's own start (pool, migrations, bus), the database running
STOP_GRACE = 20.0  # beyond server.shutdown_timeout, before the watchdog ends the process
SECOND_SIGNAL_GRACE = 5.0
# Connections the kernel holds for the hub before it accepts them. After a restart a whole
# fleet reconnects at once; with aiohttp's usual 128, every phone past them has its SYN
# dropped and tries again only 1, 3, 7 ... seconds later (scripts/bench_capacity.py). As
# many as the kernel allows: it caps this at net.core.somaxconn (4,096 by default), which
# an operator of a larger fleet raises.
LISTEN_BACKLOG = 65535

T = TypeVar("T")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the hub")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.add_argument(
        "--workers", type=worker_count, default=1, metavar="N",
        help="hub processes on the port (default 1; 'auto': one per CPU)",
    )
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    migrate.set_defaults(handler=_migrate)


class Interrupted(BaseException):
    """A signal arrived while the hub was starting outside the event loop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class Stopping:
    """SIGINT/SIGTERM for the whole of `serve`. Before the event loop runs, a signal raises
    `Interrupted` where the start is (a blocking initdb or pg_ctl included), so the `with`
    blocks stop what they started. In the loop, it calls `on_signal`. Either way the first
    signal arms a watchdog, and a second one fires it sooner."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.signals = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.on_signal: Callable[[int], None] | None = None
        self._watchdog: threading.Timer | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Stopping:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]  # typeshed: as signal() gave it

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        self._arm(self.grace if self.signals == 1 else SECOND_SIGNAL_GRACE)
        if self.loop is not None and self.on_signal is not None:
            self.loop.call_soon_threadsafe(self.on_signal, self.signals)
        elif self.signals == 1:
            raise Interrupted(signum)

    def _arm(self, seconds: float) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watchdog = threading.Timer(seconds, self._give_up, [seconds])
        self._watchdog.daemon = True
        self._watchdog.start()

    @staticmethod
    def _give_up(seconds: float) -> None:
        print(f"smsnodes-hub: not stopped after {seconds:.0f} s: stopping the embedded "
              "PostgreSQL and exiting", file=sys.stderr, flush=True)
        try:
            embedded.stop_embedded_now()
        finally:
            os._exit(1)


def listen(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for `host`:`port`, before anything else starts: a busy port is
    told at once, and no other process can take it while the database starts."""
    try:
        found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {host}: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(
                (f, t, p, "", a) for f, t, p, _n, a in found):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
                sock.listen(LISTEN_BACKLOG)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise UsageError(
                        f"port {port} is in use (is another hub running?)") from None
                raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    inherited = inherited_sockets()  # a worker of `serve --workers`
    sockets = inherited or listen(settings.server.host, settings.server.port)
    try:
        with Stopping(settings.server.shutdown_timeout + STOP_GRACE) as stopping:
            try:
                with database(settings) as dsn:
                    if args.workers > 1 and inherited is None:
                        return run_loop(_supervise(settings, dsn, sockets, stopping, args))
                    run_loop(_run_server(settings, dsn, sockets, stopping,
                                         announce=inherited is None))
            except Interrupted as exc:
                print(f"smsnodes-hub: stopped by {signal.Signals(exc.signum).name} while "
                      "starting", file=sys.stderr, flush=True)
                return 128 + exc.signum
    finally:
        for sock in sockets:
            sock.close()
    return 0


def run_loop(main: Coroutine[object, object, T]) -> T:
    """asyncio.run, on uvloop (a dependency everywhere but on Windows) when it is there."""
    try:
        import uvloop  # not on Windows
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def _supervise(settings: Settings, dsn: str, sockets: list[socket.socket],
                     stopping: Stopping, args: argparse.Namespace) -> int:
    """The parent of `--workers N`: migrate once, run the workers, stop them on a signal."""
    stop = asyncio.Event()
    stopping.loop, stopping.on_signal = asyncio.get_running_loop(), lambda _count: stop.set()
    conn = await db.connect(dsn)
    try:
        await db.migrate(conn)
    finally:
        await conn.close()
    return await supervise(
        settings, dsn, sockets, args.workers, args.config, stop,
        lambda pids: print(f"{listening_line(settings, sockets)}, {len(pids)} workers "
                           f"(pids {', '.join(map(str, pids))})", flush=True),
    )


def listening_line(settings: Settings, sockets: list[socket.socket]) -> str:
    scheme = "https" if settings.tls else "http"
    host, port = sockets[0].getsockname()[:2]
    shown = "localhost" if host in ("0.0.0.0", "::", "127.0.0.1") else host  # noqa: S104
    return (f"smsnodes-hub listening on {scheme}://{shown}:{port} "
            f"(health: {scheme}://{shown}:{port}/api/health)")


async def _run_server(settings: Settings, dsn: str, sockets: list[socket.socket],
                      stopping: Stopping, *, announce: bool = True) -> None:
    stop = asyncio.Event()
    task = asyncio.current_task()
    assert task is not None
    started = False

    def on_signal(count: int) -> None:
        if count == 1 and started:
            stop.set()  # the usual way: phones told, requests finished, then out
        else:
            task.cancel()  # still starting, or a second signal: do not wait for anything

    stopping.loop, stopping.on_signal = asyncio.get_running_loop(), on_signal
    app = create_app(settings, dsn)
    runner = web.AppRunner(
        app, shutdown_timeout=settings.server.shutdown_timeout, handle_signals=False,
        access_log=None,
    )
    ssl_context = None
    if settings.tls:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(settings.server.tls_cert, settings.server.tls_key)
    try:
        try:
            await asyncio.wait_for(runner.setup(), START_TIMEOUT)
        except TimeoutError:
            raise UsageError(f"the hub did not start within {START_TIMEOUT:.0f} s") from None
        # asyncio listens again with the site's backlog: it must be ours too.
        sites = [web.SockSite(runner, sock, ssl_context=ssl_context, backlog=LISTEN_BACKLOG)
                 for sock in sockets]
        for site in sites:
            await site.start()
        started = True
        collector.tune()
        if announce:
            print(listening_line(settings, sockets), flush=True)
        await stop.wait()
        print("smsnodes-hub stopping ...", flush=True)
    except asyncio.CancelledError:
        print("smsnodes-hub stopping at once ...", flush=True)
    finally:
        try:
            await asyncio.wait_for(asyncio.shield(runner.cleanup()),
                                   settings.server.shutdown_timeout + STOP_GRACE / 2)
        except (TimeoutError, asyncio.CancelledError):
            print("smsnodes-hub: the hub did not stop in time; leaving anyway",
                  file=sys.stderr, flush=True)


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
