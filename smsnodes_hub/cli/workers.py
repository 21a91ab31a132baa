"""`serve --workers N`: N hub processes answering on one port, stopped together.

The parent takes the port and starts the database as a single hub would, then starts N
hub processes that inherit its listening sockets and accept on them (the kernel hands
each connection to one of them). Each worker is a full hub: the bus, presence and
the queue already let several processes act as one. The sockets are inherited rather
than each worker binding the port with SO_REUSEPORT: with that option a second hub run by
the same user would share the port silently instead of being told it is in use.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from smsnodes_hub.cli.common import UsageError
from smsnodes_hub.config import Settings

# Internal: the listening sockets' descriptors, for a worker started by `serve --workers`.
LISTEN_FDS_ENV = "SMSNODES_LISTEN_FDS"
MAX_WORKERS = 64


def worker_count(value: str) -> int:
    """argparse type of --workers: a number from 1, or `auto` (one per CPU)."""
    if value == "auto":
        return max(1, os.cpu_count() or 1)
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number or 'auto'") from None
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_WORKERS}")
    return count


def inherited_sockets() -> list[socket.socket] | None:
    """In a worker: the parent's listening sockets; None in a hub started by hand."""
    fds = os.environ.pop(LISTEN_FDS_ENV, "")
    if not fds:
        return None
    try:
        sockets = [socket.socket(fileno=int(fd)) for fd in fds.split(",")]
    except (ValueError, OSError) as exc:
        raise UsageError(f"{LISTEN_FDS_ENV}: not listening sockets: {exc}") from None
    for sock in sockets:
        sock.setblocking(False)
    return sockets


async def supervise(settings: Settings, dsn: str, sockets: list[socket.socket], count: int,
                    config: Path | None, stop: asyncio.Event,
                    started: Callable[[list[int]], None]) -> int:
    """Run `count` workers until `stop` is set or one of them ends; stop the others."""
    fds = [sock.fileno() for sock in sockets]
    env = {**os.environ, "DATABASE_URL": dsn, LISTEN_FDS_ENV: ",".join(map(str, fds))}
    argv = [sys.executable, "-m", "smsnodes_hub", *(["--config", str(config)] if config else []),
            "serve"]
    workers = [await asyncio.create_subprocess_exec(*argv, env=env, pass_fds=fds)
               for _ in range(count)]
    started([w.pid for w in workers])
    stopped = asyncio.ensure_future(stop.wait())
    exits = {asyncio.ensure_future(w.wait()): w for w in workers}
    done, _ = await asyncio.wait([stopped, *exits], return_when=asyncio.FIRST_COMPLETED)
    failed = stopped not in done
    if failed:
        ended = next(exits[f] for f in done if f in exits)
        print(f"smsnodes-hub: worker {ended.pid} ended (exit {ended.returncode}); "
              "stopping the others", file=sys.stderr, flush=True)
    for worker in workers:
        if worker.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.gather(*(w.wait() for w in workers)),
                               settings.server.shutdown_timeout + 10)
    except TimeoutError:
        for worker in workers:
            if worker.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.kill()
        await asyncio.gather(*(w.wait() for w in workers))
    stopped.cancel()
    return 1 if failed else 0
