"""What the benchmarks (bench_send.py, bench_fleet.py) share: argument types, a scratch
database on a given server, and the embedded server's postmaster pid."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def with_database(dsn: str, name: str) -> str:
    """The same server, another database (host/port and unix-socket DSNs alike)."""
    base, sep, query = dsn.partition("?")
    scheme, _, rest = base.partition("://")
    authority, _, _old = rest.partition("/")
    return f"{scheme}://{authority}/{name}{sep}{query}"


@contextlib.asynccontextmanager
async def scratch_database(server_dsn: str) -> AsyncIterator[str]:
    """A new database bench_<random> on the server of `server_dsn`, dropped on the way out."""
    name = f"bench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(server_dsn, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(server_dsn, name)
    finally:
        admin = await asyncpg.connect(server_dsn, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@dataclass(frozen=True, slots=True)
class Device:
    username: str
    password: str


def postmaster_pid(data_dir: str | None) -> int | None:
    if not data_dir:
        return None
    try:
        return int(Path(data_dir, "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


async def close_phone(ws: aiohttp.ClientWebSocketResponse | None,
                      reader: asyncio.Task[None] | None) -> None:
    """Close a benchmark phone's socket (at most 5 s) and end its reader task."""
    if ws is not None and not ws.closed:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 5)
    if reader is not None:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
