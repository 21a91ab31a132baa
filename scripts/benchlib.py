"""What the benchmarks (bench_send.py, bench_fleet.py, bench_capacity.py, bench_logins.py)
share: argument types, the hub's environment (settings, allocator), a scratch database on
a given server, the embedded server's postmaster pid, device accounts made with cheap
Argon2id, child processes that announce they are ready, a lean keep-alive HTTP/1.1
client, and latency summaries."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import math
import os
import re
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(ROOT))

# -- The hub's own code: the ONLY imports of smsnodes_hub here (update when modules move) ---------
from smsnodes_hub import db, embedded  # noqa: E402  # db.migrate
from smsnodes_hub.auth import accounts  # noqa: E402
from smsnodes_hub.auth.crypto import KdfParams, PasswordKdf  # noqa: E402

EMBEDDED_POSTGRES = embedded.embedded_postgres  # (data_dir, delete=True) -> DSN, a context manager
MIGRATE = db.migrate  # (asyncpg connection) -> applies sql/*.sql
CREATE_DEVICE = accounts.create_device  # (conn, kdf, KdfParams, username, password)
# -------------------------------------------------------------------------------------------------

# Cheap Argon2id for the benchmarks' accounts and hubs: 8 KiB, 1 pass, 1 lane (the minimum).
# A benchmark of messages or sockets must not measure password derivations.
CHEAP_ARGON2 = {"SMSNODES_SECURITY_ARGON2_MEMORY_KIB": "8",
                "SMSNODES_SECURITY_ARGON2_ITERATIONS": "1",
                "SMSNODES_SECURITY_ARGON2_LANES": "1"}
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
LISTENING = re.compile(r"listening on \S+?://\S+?:(\d+)")
clock = time.monotonic  # CLOCK_MONOTONIC: comparable between the benchmarks' processes


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


# -- Device accounts ------------------------------------------------------------------------------


async def create_devices(dsn: str, names: list[str], connections: int = 1) -> list[Device]:
    """One account with its one phone per name, each with a random password and the cheap
    Argon2id settings (CHEAP_ARGON2), over `connections` database connections at once."""
    params = KdfParams(int(CHEAP_ARGON2["SMSNODES_SECURITY_ARGON2_MEMORY_KIB"]),
                       int(CHEAP_ARGON2["SMSNODES_SECURITY_ARGON2_ITERATIONS"]),
                       int(CHEAP_ARGON2["SMSNODES_SECURITY_ARGON2_LANES"]))
    devices = [Device(name, secrets.token_urlsafe(18)) for name in names]
    kdf = PasswordKdf(2)

    async def make(share: list[Device]) -> None:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            for d in share:
                await CREATE_DEVICE(conn, kdf, params, d.username, d.password)
        finally:
            await conn.close()

    try:
        k = max(1, min(connections, len(devices)))
        await asyncio.gather(*(make(devices[i::k]) for i in range(k)))
    finally:
        kdf.close()
    return devices


# -- The hub's environment ------------------------------------------------------------------------

# Besides its settings, a hub process may be given another memory allocator
# (docs/configuration.md, "Memory after a fleet leaves"). These are the only other
# variables --hub-env takes, and `--allocator jemalloc` sets them as that page says.
ALLOCATOR_VARIABLES = ("LD_PRELOAD", "PYTHONMALLOC", "MALLOC_CONF")
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"


def add_hub_env_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--hub-env", action="append", default=[], metavar="KEY=VALUE",
                       help="another hub setting (SMSNODES_...) or one of "
                            f"{', '.join(ALLOCATOR_VARIABLES)}; repeatable")
    group.add_argument("--allocator", choices=("python", "jemalloc"), default="python",
                       help="python: CPython's own (default); jemalloc: the hub process "
                            "on jemalloc (Debian: apt-get install libjemalloc2)")


def hub_env(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """What --allocator and --hub-env add to the hub's environment; a bad item is a usage
    error."""
    env: dict[str, str] = {}
    if args.allocator == "jemalloc":
        library = ctypes.util.find_library("jemalloc")
        if library is None:
            parser.error("--allocator jemalloc: no libjemalloc on this machine "
                         "(Debian: apt-get install libjemalloc2)")
        env.update(LD_PRELOAD=library, PYTHONMALLOC="malloc", MALLOC_CONF=JEMALLOC_CONF)
    for item in args.hub_env:
        key, sep, value = item.partition("=")
        if not sep or not (key.startswith("SMSNODES_") or key in ALLOCATOR_VARIABLES):
            parser.error(f"--hub-env wants SMSNODES_KEY=VALUE or one of "
                         f"{', '.join(ALLOCATOR_VARIABLES)}, got {item!r}")
        env[key] = value
    return env


def hub_env_label(r: dict[str, Any]) -> str:
    """The run's allocator and --hub-env items as a benchmark's header line ends with them."""
    return ((f"; allocator {r['allocator']}" if r["allocator"] != "python" else "")
            + (f"; {' '.join(r['hub_env'])}" if r["hub_env"] else ""))


# -- Child processes ------------------------------------------------------------------------------


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when the benchmark dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without the caller's hub settings, the checkout on PYTHONPATH,
    plus `extra`: runs can be compared whatever the caller's shell holds."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SMSNODES_") and k != "DATABASE_URL"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", ""))
                                        if p)
    env.update(extra)
    return env


@dataclass(slots=True)
class Child:
    """A child process that prints `listening on ...:PORT` (hub, ceilings) or `ready`."""

    name: str
    proc: asyncio.subprocess.Process
    log_path: Path
    port: int | None = None
    ready: dict[str, Any] = field(default_factory=dict)

    @classmethod
    async def start(cls, name: str, cmd: list[str], env: dict[str, str], workdir: Path,
                    stdin: bytes | None = None) -> Child:
        log_path = workdir / f"{name}.log"
        with log_path.open("wb") as log_file:
            proc = await asyncio.create_subprocess_exec(
                *cmd, cwd=workdir, env=env, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log_file,
                preexec_fn=die_with_parent,  # only prctl() between fork and exec
                limit=1 << 26,
            )
        child = cls(name, proc, log_path)
        try:
            if stdin is not None:
                assert proc.stdin is not None
                proc.stdin.write(stdin + b"\n")
                await proc.stdin.drain()
            async with asyncio.timeout(START_TIMEOUT):
                while True:
                    line = await child.readline()
                    if line is None:
                        raise RuntimeError(f"{name} exited before it was ready:\n"
                                           + child.log_tail())
                    if line.startswith("ready "):
                        child.ready = orjson.loads(line[6:])
                        break
                    match = LISTENING.search(line)
                    if match:
                        child.port = int(match[1])
                        break
        except BaseException:
            await child.stop()
            raise
        return child

    async def readline(self) -> str | None:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        return line.decode(errors="replace").rstrip("\n") if line else None

    async def ask(self, command: str) -> dict[str, Any]:
        """One command line to a phones process, one JSON line back."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        line = await self.readline()
        if line is None:
            raise RuntimeError(f"{self.name} exited:\n" + self.log_tail())
        return orjson.loads(line)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(it logged nothing)"

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self.proc.stdin is not None:  # all pipes closed: the transport finishes
            self.proc.stdin.close()

    async def drain_stdout(self) -> None:
        """For the hub: read its stdout to the end so the pipe never fills."""
        with contextlib.suppress(Exception):
            while await self.readline() is not None:
                pass


# -- CPU accounting (Linux /proc) -----------------------------------------------------------------


TICK = os.sysconf("SC_CLK_TCK")


def proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds) of every process."""
    table: dict[int, tuple[int, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK)
    return table


def tree_cpu(table: dict[int, tuple[int, float]], roots: list[int], descend: bool = True
              ) -> float | None:
    """CPU seconds of the processes `roots` and (unless not `descend`) their descendants."""
    if not roots or not any(r in table for r in roots):
        return None
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, stack, seen = 0.0, list(roots), set()
    while stack:
        pid = stack.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        total += table[pid][1]
        if descend:
            stack.extend(children.get(pid, ()))
    return total


def machine_busy() -> float:
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK


# -- A lean HTTP/1.1 client -------------------------------------------------------------------


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection, one request at a time, Content-Length or chunked answers."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.status = 0
        self.need: int | None = None  # body bytes still to come; -1: chunked
        self.closed = False

    @classmethod
    async def open(cls, port: int) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(cls, "127.0.0.1", port)
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionResetError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.waiter is not None:
            if self.need is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.buf[:end]).lower()
                del self.buf[:end + 4]
                self.status = int(head[9:12])
                match = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
                self.need = int(match[1]) if match else -1
            if self.need >= 0:
                if len(self.buf) < self.need:
                    return
                body = bytes(self.buf[:self.need])
                del self.buf[:self.need]
            else:
                body_or_none = self._chunked()
                if body_or_none is None:
                    return
                body = body_or_none
            self.need = None
            waiter, self.waiter = self.waiter, None
            if not waiter.done():
                waiter.set_result((self.status, body))

    def _chunked(self) -> bytes | None:
        pos, parts = 0, []
        while True:
            eol = self.buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(self.buf[pos:eol]).split(b";")[0], 16)
            if len(self.buf) < eol + 2 + size + 2:
                return None
            parts.append(bytes(self.buf[eol + 2:eol + 2 + size]))
            pos = eol + 2 + size + 2
            if size == 0:
                del self.buf[:pos]
                return b"".join(parts)

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        if self.closed:
            raise ConnectionResetError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


# -- Latency summaries ---------------------------------------------------------------------------


def percentile(ordered: list[float], q: float) -> float:
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(values: list[float]) -> dict[str, float | None] | None:
    if not values:
        return None
    ordered = sorted(v * 1000 for v in values)

    def shown(v: float) -> float | None:
        return round(v, 2) if math.isfinite(v) else None

    return {"p50": shown(percentile(ordered, 0.50)), "p90": shown(percentile(ordered, 0.90)),
            "p99": shown(percentile(ordered, 0.99)), "max": shown(ordered[-1])}
