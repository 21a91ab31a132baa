#!/usr/bin/env python3
"""Capacity benchmark: N idle phones on one hub process, then a reconnect storm (issue 15).

It starts everything itself and cleans up on every exit path (Ctrl-C and SIGTERM included):

1. a private PostgreSQL in a temporary folder (or, with `--database-url` / $DATABASE_URL, a
   new database `bench_<random>` on that server, dropped at the end), the migrations and
   `--phones` device accounts (one account each), made with the cheap Argon2id settings of
   benchlib.CHEAP_ARGON2 and given to the hub as SMSNODES_SECURITY_ARGON2_*: real accounts
   and real password logins, at 8 KiB and one pass instead of 64 MiB and three (a benchmark
   of sockets must not measure ten thousand derivations);
2. the hub, `python -m smsnodes_hub serve` in a child process on a fixed free port of
   127.0.0.1, with RLIMIT_NOFILE raised to its hard limit in this script (the children
   inherit it);
3. the phones, spread over `--phone-procs` child processes: lean WebSocket clients (one
   asyncio protocol each, no task per phone) that log in as PROTOCOL.md says (a password
   the first time, then the session token from `auth_ok`), answer every ping with a pong
   (the protocol's heartbeat), ack every `sms` frame at once and send nothing else.

Then, measuring the hub's resident memory (VmRSS) at each step:

- `before`: the hub started, nothing connected;
- all N phones log in with their passwords and stay idle for `--hold` seconds (by default
  longer than one heartbeat, so every phone has been pinged and answered): `with`, the
  hub's memory per phone = (with - before) / N; `/api/health` answered `--health` times in
  a row (p50/p99, and `connectedDevices` = N); `--sends` sends, one at a time, to phones
  spread over the fleet: time from the POST to the `sms` frame at that phone;
- every phone closes its socket (1000); after `--settle` seconds, `after`: how much of the
  growth the hub gave back;
- the phones log in again with their tokens (`again`: what the hub's memory does when a
  fleet comes back), then the hub is stopped with SIGTERM (every phone must see 1001) and
  started again on the same database and port; while the phones are away, `--queue-depth`
  messages are queued for each of `--queued-phones` phones (answered 200: committed);
- the reconnect storm: all N phones reconnect with their tokens at once (a phone whose
  attempt fails retries after a short randomised backoff, as an app would), and the
  benchmark waits until all are authenticated and every queued message has reached its
  phone. Every `sms` frame is checked against what was queued: none missing, none at the
  wrong phone, none pushed again as a new attempt; repeats of the same (id, attempt), which
  the protocol allows, are counted apart. The messages' states are then read from the
  database.

It prints every figure with PASS/FAIL per target and a one-line JSON (`--json-only`: only
the JSON). All clocks are CLOCK_MONOTONIC, shared by the processes.

Usage (from the repository root; the full run only under the shared lock)::

    flock /work/bench.lock .venv/bin/python scripts/bench_capacity.py      # 10,000 phones
    .venv/bin/python scripts/bench_capacity.py --phones 1000 --hold 5      # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import platform
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(ROOT))
# Shared with the other benchmarks (scripts/ is on sys.path when run as a script).
from benchlib import (  # noqa: E402
    CHEAP_ARGON2,
    EMBEDDED_POSTGRES,
    MIGRATE,
    Child,
    Device,
    HttpConnection,
    add_hub_env_arguments,
    child_env,
    clock,
    create_devices,
    hub_env,
    hub_env_label,
    machine_busy,
    positive_float,
    positive_int,
    postmaster_pid,
    proc_table,
    scratch_database,
    summary_ms,
    tree_cpu,
)

TARGETS = {  # issue 15, item 5
    "rss_per_phone_kb": 20.0,  # the issue's unit: 1,000 bytes (19.53 KiB)
    "given_back": 0.8,  # share of the growth returned once the phones have gone
    "health_p99_ms": 50.0,
    "push_p99_ms": 50.0,
    "storm_s": 10.0,
}
SEED_NUMBER = "+1234567890"
SEED_MESSAGE = "Hello from SMS Nodes!"
WS_PATH = "/ws/device"
LOGIN_TIMEOUT = 30.0  # a phone gives up on one attempt after this long
CLOSE_TIMEOUT = 30.0  # for all of a process's phones to be closed
FD_SPARE = 500  # descriptors beyond one per socket (database, pipes, logs)
DEVICE_CONNECTIONS = 8  # database connections making the accounts at once
QUEUE_SENDERS = 16  # keep-alive connections queueing the storm's messages
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


# -- Command line -------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_capacity.py", description=__doc__.split("\n")[0])
    load = p.add_argument_group("load")
    load.add_argument("--phones", type=positive_int, default=10_000,
                      help="phones, each its own device account and WebSocket (10000)")
    load.add_argument("--phone-procs", type=positive_int, default=4,
                      help="processes hosting the phones (4)")
    load.add_argument("--login-concurrency", type=positive_int, default=100,
                      help="password logins under way at once per phones process (100); "
                           "the storm has no such limit")
    load.add_argument("--hold", type=float, default=35.0,
                      help="seconds all phones stay idle before measuring (35: longer than "
                           "the hub's 30 s heartbeat, so every phone was pinged)")
    load.add_argument("--health", type=positive_int, default=200,
                      help="/api/health requests while all are open (200)")
    load.add_argument("--sends", type=positive_int, default=50,
                      help="sends to connected phones, one at a time (50)")
    load.add_argument("--settle", type=float, default=5.0,
                      help="seconds after the phones closed before `after` (5)")
    load.add_argument("--queued-phones", type=positive_int, default=None,
                      help="phones that get queued messages before the storm (all)")
    load.add_argument("--queue-depth", type=positive_int, default=1,
                      help="messages queued for each of them (1)")
    load.add_argument("--storm-limit", type=positive_float, default=60.0,
                      help="seconds to wait for the storm to finish before calling it (60)")
    hub = p.add_argument_group("hub")
    add_hub_env_arguments(hub)
    hub.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or None,
                     help="PostgreSQL server to use (default $DATABASE_URL, else embedded); "
                          "a database bench_<random> is created and dropped")
    out = p.add_argument_group("output")
    out.add_argument("--py-spy", metavar="FILE", default=None,
                     help="record the restarted hub with py-spy (installed separately) "
                          "during the storm, into FILE (py-spy's raw format: collapsed "
                          "stacks, for flamegraph.pl or speedscope)")
    out.add_argument("--json-only", action="store_true", help="print only the JSON line")
    out.add_argument("--timeout", type=positive_float, default=None,
                     help="hard limit for the whole run in seconds")
    p.add_argument("--_role", choices=("phones",), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.hub_vars = hub_env(p, args)
    if args.hold < 0 or args.settle < 0:
        p.error("--hold and --settle must be 0 or more")
    args.phone_procs = min(args.phone_procs, args.phones)
    args.queued_phones = min(args.queued_phones or args.phones, args.phones)
    if args.timeout is None:
        args.timeout = args.hold + args.settle + 3 * args.storm_limit + args.phones / 25 + 180
    return args


# -- The phones (child process role) --------------------------------------------------------------


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame: final, masked (RFC 6455 §5.3)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    mask = random.randbytes(4)
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + mask + masked


class Phone(asyncio.Protocol):
    """One phone: its own socket, its handshake and frames parsed in the protocol's
    callbacks (no task per phone, so a few processes can hold thousands)."""

    __slots__ = ("authed", "buf", "close_code", "fleet", "index", "inflate", "leaving",
                 "password", "sent_close", "since", "token", "transport", "upgraded",
                 "use_token", "username", "waiter")

    def __init__(self, fleet: Fleet, index: int, username: str, password: str) -> None:
        self.fleet = fleet
        self.index = index
        self.username = username
        self.password = password
        self.token: str | None = None
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.authed = False
        self.sent_close = False  # our close frame is out (first or as the echo)
        self.leaving = False  # we asked to close, the hub did not end it
        self.use_token = False
        self.close_code: int | None = None
        self.waiter: asyncio.Future[str] | None = None
        self.inflate: Any = None  # a zlib decompressor when the hub accepted deflate
        self.since = 0.0  # when the TCP connection was made, then when the hub upgraded it

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buf = bytearray()
        self.upgraded = self.authed = self.sent_close = self.leaving = False
        self.close_code = None
        self.inflate = None
        self.since = clock()
        key = base64.b64encode(random.randbytes(16))
        # Offered as Android's OkHttp offers it: what the hub does with it is its business.
        transport.write(b"GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                        b"Sec-WebSocket-Version: 13\r\n"
                        b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
                        % (WS_PATH.encode(), self.fleet.host_header, key))

    def connection_lost(self, exc: Exception | None) -> None:
        was_authed = self.authed
        self.transport = None
        self.authed = False
        code = str(self.close_code) if self.close_code is not None else "no close frame"
        self._settle(f"closed {code}" if self.close_code is not None else "dropped")
        if was_authed and not self.leaving:
            self.fleet.closes[code] += 1  # the hub ended it

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[9:12])
            if b"permessage-deflate" in bytes(buf[:end]).lower():
                self.inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                self.fleet.compressed += 1
            del buf[:end + 4]
            if status != b"101":
                self._settle(f"http {status.decode(errors='replace')}")
                self._abort()
                return
            self.upgraded = True
            now = clock()
            self.fleet.upgrade_s.append(now - self.since)
            self.since = now
            auth: dict[str, Any]
            if self.use_token and self.token:
                auth = {"type": "auth", "token": self.token}
            else:
                auth = {"type": "auth", "username": self.username, "password": self.password,
                        "device": {"model": "bench_capacity", "app": "bench", "sims": 1}}
            self._send(OP_TEXT, orjson.dumps(auth))
        while len(buf) >= 2:
            b1 = buf[1]
            n, pos = b1 & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, pos = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, pos = int.from_bytes(buf[2:10], "big"), 10
            if b1 & 0x80 or not buf[0] & 0x80:  # the hub neither masks nor fragments
                self.fleet.other["bad frame"] += 1
                self._abort()
                return
            if len(buf) < pos + n:
                return
            opcode, payload = buf[0] & 0x0F, bytes(buf[pos:pos + n])
            if buf[0] & 0x40 and self.inflate is not None:  # RSV1: a compressed message
                payload = self.inflate.decompress(payload + b"\x00\x00\xff\xff")
            del buf[:pos + n]
            self._frame(opcode, payload)
            if self.transport is None:
                return

    # -- Frames ---------------------------------------------------------------------------------

    def _frame(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_TEXT:
            self._text(orjson.loads(payload))
        elif opcode == OP_PING:
            self.fleet.pings += 1
            self._send(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if not self.sent_close:
                self.sent_close = True
                self._send(OP_CLOSE, payload[:2])
            if self.transport is not None:
                self.transport.close()
        elif opcode != OP_PONG:
            self.fleet.other[f"opcode {opcode}"] += 1

    def _text(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        f = self.fleet
        if kind == "sms":
            msg_id, attempt = frame["id"], frame.get("attempt", 1)
            f.frames.append((self.index, msg_id, attempt, clock()))
            self._send(OP_TEXT, b'{"type":"ack","id":%d,"attempt":%d}' % (msg_id, attempt))
        elif kind == "auth_ok":
            self.token = frame["token"]
            self.authed = True
            now = clock()
            f.auth_times.append(now)
            f.auth_s.append(now - self.since)
            f.window = frame.get("window")
            f.heartbeat = frame.get("heartbeat")
            self._settle("ok")
        elif kind == "auth_failed":
            f.other[f"auth_failed {frame.get('error')}"] += 1
        else:
            f.other[str(kind)] += 1

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(ws_frame(opcode, payload))

    def _settle(self, outcome: str) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(outcome)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- What the process asks of it ----------------------------------------------------------

    async def attempt(self, use_token: bool) -> str:
        """One connection and login: "ok", or why not."""
        loop = asyncio.get_running_loop()
        self.use_token = use_token
        self.waiter = loop.create_future()
        try:
            await loop.create_connection(lambda: self, self.fleet.host, self.fleet.port)
        except OSError as exc:
            return type(exc).__name__
        try:
            async with asyncio.timeout(LOGIN_TIMEOUT):
                return await self.waiter
        except TimeoutError:
            self._abort()
            return "timeout"

    async def connect(self, use_token: bool, deadline: float) -> str:
        """Log in, retrying what an app would retry (refused, dropped, 1013, 4429, a
        timeout) with a randomised backoff, until `deadline`."""
        tries = 0
        while True:
            outcome = await self.attempt(use_token)
            if outcome == "ok":
                return outcome
            self.fleet.failures[outcome] += 1
            if outcome in ("closed 4401", "closed 4409"):
                return outcome  # a benchmark's phone should never see these: reported
            tries += 1
            delay = min(2.0, 0.1 * 2 ** tries) * random.uniform(0.5, 1.0)
            if clock() + delay >= deadline:
                return outcome
            self.fleet.retries += 1
            await asyncio.sleep(delay)

    def close(self) -> None:
        if self.transport is not None and not self.sent_close:
            self.sent_close = self.leaving = True
            self._send(OP_CLOSE, (1000).to_bytes(2, "big"))

    @property
    def open(self) -> bool:
        return self.transport is not None and self.authed


class Fleet:
    """One phones process: its phones and what they saw."""

    def __init__(self, host: str, port: int, devices: list[list[Any]]) -> None:
        self.host = host
        self.port = port
        self.host_header = f"{host}:{port}".encode()
        self.phones = [Phone(self, index, u, pw) for index, u, pw in devices]
        self.frames: list[tuple[int, int, int, float]] = []  # phone, id, attempt, when
        self.auth_times: list[float] = []
        self.upgrade_s: list[float] = []  # TCP connected -> 101 Switching Protocols
        self.auth_s: list[float] = []  # 101 -> auth_ok
        self.failures: Counter[str] = Counter()
        self.closes: Counter[str] = Counter()  # close codes of sockets the hub ended
        self.other: Counter[str] = Counter()
        self.retries = 0
        self.pings = 0
        self.compressed = 0  # logins whose socket the hub agreed to compress
        self.window: int | None = None
        self.heartbeat: int | None = None

    async def login(self, use_token: bool, concurrency: int | None, limit: float
                    ) -> dict[str, Any]:
        self.auth_times, self.failures, self.retries = [], Counter(), 0
        self.upgrade_s, self.auth_s = [], []
        deadline = clock() + limit
        sem = asyncio.Semaphore(concurrency) if concurrency else None
        started = clock()

        async def one(phone: Phone) -> str:
            if sem is None:
                return await phone.connect(use_token, deadline)
            async with sem:
                return await phone.connect(use_token, deadline)

        outcomes = Counter(await asyncio.gather(*(one(p) for p in self.phones)))
        return {"started": started, "ok": outcomes.pop("ok", 0), "failed": dict(outcomes),
                "failures": dict(self.failures), "retries": self.retries,
                "auth_times": self.auth_times, "upgrade_s": self.upgrade_s,
                "auth_s": self.auth_s}

    async def wait_all_closed(self, limit: float) -> bool:
        deadline = clock() + limit
        while any(p.transport is not None for p in self.phones):
            if clock() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def close_all(self) -> dict[str, Any]:
        for p in self.phones:
            p.close()
        closed = await self.wait_all_closed(CLOSE_TIMEOUT)
        if not closed:  # a hub that never answered the close: drop TCP under it
            for p in self.phones:
                p._abort()
        return {"all_closed": closed}

    def stats(self) -> dict[str, Any]:
        """Counters since the last call (then reset) and what is open now."""
        out = {"open": sum(1 for p in self.phones if p.open), "closes": dict(self.closes),
               "other": dict(self.other), "pings": self.pings, "window": self.window,
               "heartbeat": self.heartbeat, "compressed": self.compressed}
        self.closes, self.other, self.pings, self.compressed = Counter(), Counter(), 0, 0
        return out


async def phones_role() -> None:
    """Child process: its config on the first stdin line, then one command per line, one
    JSON line back for each."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    cfg = orjson.loads(await reader.readline())
    fleet = Fleet(cfg["host"], cfg["port"], cfg["devices"])
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    def say(obj: Any) -> None:
        sys.stdout.buffer.write(orjson.dumps(obj) + b"\n")
        sys.stdout.flush()

    print("ready {}", flush=True)
    try:
        while not stop.is_set():
            get = asyncio.ensure_future(reader.readline())
            halt = asyncio.ensure_future(stop.wait())
            await asyncio.wait({get, halt}, return_when=asyncio.FIRST_COMPLETED)
            halt.cancel()
            if not get.done():
                get.cancel()
                break
            line = get.result()
            if not line.strip():
                break
            cmd = orjson.loads(line)
            what = cmd["cmd"]
            if what == "login":
                say(await fleet.login(cmd["token"], cmd.get("concurrency"), cmd["limit"]))
            elif what == "stats":
                say(fleet.stats())
            elif what == "frames":
                frames, fleet.frames = fleet.frames, []
                say({"frames": frames})
            elif what == "count":
                say({"frames": len(fleet.frames), "open": sum(p.open for p in fleet.phones)})
            elif what == "close":
                say(await fleet.close_all())
            elif what == "wait_closed":
                say({"all_closed": await fleet.wait_all_closed(cmd["limit"])})
            elif what == "stop":
                break
    finally:
        for p in fleet.phones:
            p._abort()


# -- The hub ------------------------------------------------------------------------------------


def raise_nofile(needed: int) -> tuple[int, int]:
    """The soft RLIMIT_NOFILE up to the hard one (children inherit it); an error if even
    that is too low for `needed` descriptors in one process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise RuntimeError(f"RLIMIT_NOFILE's hard limit is {hard}, and the hub needs about "
                           f"{needed} descriptors: raise it (ulimit -Hn) or use fewer --phones")
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    """The process's resident memory (VmRSS), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def listen_overflows() -> int | None:
    """TcpExt ListenOverflows of this network namespace: connections refused because a
    listening socket's accept queue was full (the client retries its SYN a second later)."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(table.get("ListenOverflows", 0))
    return None


def _delta(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else b - a


def nofile_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return "/".join(line.split()[3:5])
    except OSError:
        pass
    return "?"


def cpu_marks(groups: dict[str, list[int]]) -> dict[str, float | None]:
    """CPU seconds so far of each group, and of the whole machine (`machine`)."""
    table = proc_table()
    marks: dict[str, float | None] = {g: tree_cpu(table, pids) for g, pids in groups.items()}
    marks["machine"] = machine_busy()
    return marks


def cpu_pct(a: float | None, b: float | None, seconds: float) -> float | None:
    return None if a is None or b is None or seconds <= 0 else round(100 * (b - a) / seconds, 1)


async def start_hub(env: dict[str, str], workdir: Path, name: str
                    ) -> tuple[Child, asyncio.Task[None]]:
    hub = await Child.start(name, [sys.executable, "-m", "smsnodes_hub", "serve"], env, workdir)
    return hub, asyncio.create_task(hub.drain_stdout())


async def stop_hub(hub: Child, drain: asyncio.Task[None]) -> float:
    """SIGTERM, then wait for the process to end: the seconds it took."""
    began = clock()
    await hub.stop()
    drain.cancel()
    return round(clock() - began, 2)


def get_request(port: int, path: str) -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (path.encode(), port)


def send_request(port: int, device: Device, text: str) -> bytes:
    body = orjson.dumps({"deviceUsername": device.username, "password": device.password,
                         "phoneNumbers": [SEED_NUMBER], "message": text})
    return (b"POST /api/send-sms HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (port, len(body), body))


async def measure_health(port: int, n: int, phones: int) -> dict[str, Any]:
    conn = await HttpConnection.open(port)
    times: list[float] = []
    statuses: Counter[int] = Counter()
    connected = None
    try:
        request = get_request(port, "/api/health")
        for _ in range(n):
            began = clock()
            status, body = await conn.request(request)
            times.append(clock() - began)
            statuses[status] += 1
            if status == 200:
                connected = orjson.loads(body).get("connectedDevices")
    finally:
        conn.close()
    return {"ms": summary_ms(times), "statuses": dict(statuses),
            "connected_devices": connected, "expected": phones}


async def measure_pushes(port: int, devices: list[Device], n: int, procs: list[Child]
                         ) -> dict[str, Any]:
    """`n` sends, one at a time, to phones spread over the fleet: POST to `sms` frame."""
    conn = await HttpConnection.open(port)
    sent: dict[int, tuple[int, float]] = {}  # message id -> phone index, POST time
    errors: Counter[str] = Counter()
    try:
        for k in range(n):
            index = k * len(devices) // n
            began = clock()
            status, body = await conn.request(send_request(port, devices[index], f"push {k}"))
            if status != 200:
                errors[str(status)] += 1
                continue
            sent[orjson.loads(body)["messageId"]] = (index, began)
            await asyncio.sleep(0.02)  # one at a time, not a burst
    finally:
        conn.close()
    deadline = clock() + 10
    arrived: dict[int, float] = {}
    wrong = 0
    while len(arrived) < len(sent) and clock() < deadline:
        await asyncio.sleep(0.2)
        for c in procs:
            for index, msg_id, _attempt, at in (await c.ask('{"cmd": "frames"}'))["frames"]:
                if msg_id in sent and msg_id not in arrived:
                    arrived[msg_id] = at
                    wrong += sent[msg_id][0] != index
    latencies = [arrived[m] - t if m in arrived else float("inf") for m, (_, t) in sent.items()]
    return {"ms": summary_ms(latencies), "sent": len(sent), "arrived": len(arrived),
            "wrong_phone": wrong, "errors": dict(errors)}


async def queue_messages(port: int, devices: list[Device], phones: int, depth: int
                         ) -> tuple[dict[int, int], Counter[str], float]:
    """`depth` messages for each of the first `phones` devices (all offline): message id
    -> phone index, the errors, and the seconds it took."""
    jobs = [(i, d) for d in range(depth) for i in range(phones)]
    queued: dict[int, int] = {}
    errors: Counter[str] = Counter()
    began = clock()
    it = iter(jobs)

    async def sender() -> None:
        conn = await HttpConnection.open(port)
        try:
            for index, d in it:
                try:
                    status, body = await conn.request(
                        send_request(port, devices[index], f"queued {d} for {index}"))
                except ConnectionError as exc:
                    errors[type(exc).__name__] += 1
                    conn.close()
                    conn = await HttpConnection.open(port)
                    continue
                if status == 200:
                    queued[orjson.loads(body)["messageId"]] = index
                else:
                    errors[str(status)] += 1
        finally:
            conn.close()

    await asyncio.gather(*(sender() for _ in range(QUEUE_SENDERS)))
    return queued, errors, round(clock() - began, 2)


async def ask_all(procs: list[Child], command: dict[str, Any]) -> list[dict[str, Any]]:
    line = orjson.dumps(command).decode()
    return list(await asyncio.gather(*(c.ask(line) for c in procs)))


def merged(results: list[dict[str, Any]], key: str) -> dict[str, int]:
    total: Counter[str] = Counter()
    for r in results:
        total.update(r.get(key) or {})
    return dict(total)


async def login_wave(procs: list[Child], token: bool, concurrency: int | None, limit: float
                     ) -> dict[str, Any]:
    overflows = listen_overflows()
    began = clock()
    results = await ask_all(procs, {"cmd": "login", "token": token, "concurrency": concurrency,
                                    "limit": limit})
    overflows = _delta(overflows, listen_overflows())
    times = sorted(t for r in results for t in r["auth_times"])
    ok = sum(r["ok"] for r in results)
    last = times[-1] if times else None
    seconds = (last - began) if last is not None else None
    return {"ok": ok, "failed": merged(results, "failed"),
            "attempt_failures": merged(results, "failures"),
            "retries": sum(r["retries"] for r in results),
            "seconds_to_last": round(seconds, 2) if seconds is not None else None,
            "logins_per_s": round(ok / seconds, 1) if seconds else None,
            "auth_at_s": {q: round(times[min(len(times) - 1, int(q * len(times)))] - began, 2)
                          for q in (0.01, 0.5, 0.9, 0.99)} if times else {},
            # Where a phone waited: for the hub to upgrade its socket, then to log it in.
            "upgrade_ms": summary_ms([x for r in results for x in r["upgrade_s"]]),
            "auth_ms": summary_ms([x for r in results for x in r["auth_s"]]),
            "listen_overflows": overflows, "began": began, "last": last}


async def collect_storm(procs: list[Child], queued: dict[int, int], began: float, limit: float
                        ) -> dict[str, Any]:
    """Wait (bounded) for every queued message's frame, then check every frame seen."""
    frames: list[list[Any]] = []
    seen_ids: set[int] = set()
    deadline = began + limit
    while True:
        for r in await ask_all(procs, {"cmd": "frames"}):
            frames += r["frames"]
            seen_ids.update(f[1] for f in r["frames"])
        if queued.keys() <= seen_ids or clock() >= deadline:
            break
        await asyncio.sleep(0.1)
    first_at: dict[int, float] = {}
    attempts: dict[int, set[int]] = {}
    pairs: Counter[tuple[int, int]] = Counter()
    wrong_phone = unexpected = 0
    for index, msg_id, attempt, at in frames:
        if msg_id not in queued:
            unexpected += 1
            continue
        wrong_phone += queued[msg_id] != index
        first_at[msg_id] = min(at, first_at.get(msg_id, at))
        attempts.setdefault(msg_id, set()).add(attempt)
        pairs[(msg_id, attempt)] += 1
    missing = len(queued) - len(first_at)
    last = max(first_at.values()) if first_at else None
    return {"queued": len(queued), "received": len(first_at), "missing": missing,
            "new_attempts": sum(len(a) - 1 for a in attempts.values()),
            "repeats": sum(c - 1 for c in pairs.values()), "wrong_phone": wrong_phone,
            "unexpected_frames": unexpected, "frames": len(frames),
            "flushed_s": round(last - began, 2) if last is not None and not missing else None,
            "last_frame_s": round(last - began, 2) if last is not None else None}


WAITS = """
SELECT coalesce(wait_event_type || ': ' || wait_event, state) AS what,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 60) AS query
  FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'
"""


@contextlib.asynccontextmanager
async def pg_waits(dsn: str, into: dict[str, Any], every: float = 0.05
                   ) -> AsyncIterator[None]:
    """Sample what the database's busy backends wait on (or that they run) meanwhile:
    where the storm's time goes on the PostgreSQL side."""
    conn = await asyncpg.connect(dsn, timeout=10)
    waits: Counter[str] = Counter()
    queries: Counter[str] = Counter()
    samples = 0

    async def sample() -> None:
        nonlocal samples
        while True:
            for row in await conn.fetch(WAITS):
                waits[row["what"]] += 1
                queries[row["query"]] += 1
            samples += 1
            await asyncio.sleep(every)

    task = asyncio.create_task(sample())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await conn.close()
        into.update({"samples": samples,
                     "busy_per_sample": round(sum(waits.values()) / max(1, samples), 2),
                     "waits": dict(waits.most_common(6)),
                     "queries": dict(queries.most_common(6))})


@contextlib.asynccontextmanager
async def py_spy(pid: int, path: str | None, limit: float) -> AsyncIterator[None]:
    """`py-spy record` of `pid` meanwhile, when asked for (stopped with SIGINT, on which
    py-spy writes what it has)."""
    if path is None:
        yield
        return
    spy = Path(sys.executable).with_name("py-spy")
    proc = await asyncio.create_subprocess_exec(
        str(spy) if spy.exists() else "py-spy", "record", "--pid", str(pid), "--nonblocking",
        "--rate", "200", "--format", "raw", "--duration", str(int(limit) + 1), "-o", path,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await asyncio.sleep(0.5)  # attached before the load starts
    try:
        yield
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 15)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def message_states(dsn: str, ids: list[int]) -> dict[str, int]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT state, count(*) AS n FROM messages WHERE id = ANY($1) "
                                "GROUP BY state ORDER BY state", ids)
    finally:
        await conn.close()
    return {r["state"]: r["n"] for r in rows}


async def prepare_database(dsn: str, n: int) -> dict[str, Any]:
    began = clock()
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await MIGRATE(conn)
        version = str(await conn.fetchval("SHOW server_version"))
        try:
            data_dir: str | None = await conn.fetchval("SHOW data_directory")
        except asyncpg.PostgresError:
            data_dir = None
    finally:
        await conn.close()
    tag = os.urandom(3).hex()
    devices = await create_devices(dsn, [f"cap-{tag}-{i:05d}" for i in range(n)],
                                   DEVICE_CONNECTIONS)
    return {"devices": devices, "version": version, "data_dir": data_dir,
            "seconds": round(clock() - began, 1)}


async def bench(args: argparse.Namespace, dsn: str, workdir: Path,
                say: Any) -> dict[str, Any]:
    loadavg = os.getloadavg()[0]
    n = args.phones
    nofile = raise_nofile(n + FD_SPARE)
    r: dict[str, Any] = {"bench": "capacity", "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
                         "code": _git_describe(), "phones": n, "phone_procs": args.phone_procs,
                         "hold": args.hold, "settle": args.settle, "hub_env": args.hub_env,
                         "allocator": args.allocator,
                         "queued_phones": args.queued_phones, "queue_depth": args.queue_depth,
                         "nofile": list(nofile), "loadavg_before": round(loadavg, 2),
                         "cpus": os.cpu_count(), "python": platform.python_version(),
                         "aiohttp": aiohttp.__version__, "asyncpg": asyncpg.__version__}
    async with contextlib.AsyncExitStack() as stack:
        if args.database_url:
            dsn = await stack.enter_async_context(scratch_database(dsn))
        say(f"creating {n} device accounts (cheap Argon2id: "
            + ", ".join(f"{k.rsplit('_', 2)[-2].lower()}_{k.rsplit('_', 1)[-1].lower()}={v}"
                        for k, v in CHEAP_ARGON2.items()) + ") ...")
        prep = await prepare_database(dsn, n)
        devices: list[Device] = prep["devices"]
        r["postgres"] = prep["version"]
        r["accounts_seconds"] = prep["seconds"]
        pm = postmaster_pid(prep["data_dir"])
        pg_group = [pm] if pm is not None else []

        port = free_port()
        env = child_env({"SMSNODES_SERVER_HOST": "127.0.0.1", "SMSNODES_SERVER_PORT": str(port),
                         "SMSNODES_LIMITS_SEND_PER_MINUTE": "0",
                         "SMSNODES_LOGGING_LEVEL": "warning", **CHEAP_ARGON2,
                         "DATABASE_URL": dsn})
        env.update(args.hub_vars)
        say("starting the hub ...")
        hub, drain = await start_hub(env, workdir, "hub")
        hub_alive = [True]

        async def stop_first() -> None:
            if hub_alive[0]:
                await stop_hub(hub, drain)

        stack.push_async_callback(stop_first)
        pid = hub.proc.pid
        r["hub_nofile"] = nofile_of(pid)
        say(f"hub: pid {pid} on 127.0.0.1:{port}, open files limit {r['hub_nofile']}")

        procs: list[Child] = []
        for k in range(args.phone_procs):
            share = [[i, devices[i].username, devices[i].password]
                     for i in range(k, n, args.phone_procs)]
            cfg = orjson.dumps({"host": "127.0.0.1", "port": port, "devices": share})
            child = await Child.start(f"phones-{k}", [sys.executable, str(SCRIPT),
                                                      "--_role", "phones"],
                                      child_env({}), workdir, stdin=cfg)
            stack.push_async_callback(child.stop)
            procs.append(child)
        groups = {"hub": [pid], "postgres": pg_group, "phones": [c.proc.pid for c in procs]}

        # Before: started, one request served, settled.
        await measure_health(port, 5, 0)
        await asyncio.sleep(1.0)
        mem: dict[str, int] = {"before": rss_kib(pid)}

        say(f"logging in {n} phones with their passwords in {args.phone_procs} processes ...")
        r["login"] = await login_wave(procs, False, args.login_concurrency, 600)
        _strip(r["login"])
        if r["login"]["ok"] != n:
            raise RuntimeError(f"only {r['login']['ok']} of {n} phones logged in: "
                               f"{r['login']['failed']}\n{hub.log_tail()}")
        say(f"all {n} open ({r['login']['logins_per_s']} logins/s); idle for {args.hold:g} s ...")
        await asyncio.sleep(args.hold)
        mem["with"] = rss_kib(pid)
        hold_stats = await ask_all(procs, {"cmd": "stats"})
        r["idle"] = {"open": sum(s["open"] for s in hold_stats),
                     "dropped": merged(hold_stats, "closes"),
                     "pings_answered": sum(s["pings"] for s in hold_stats),
                     "compressed": sum(s["compressed"] for s in hold_stats),
                     "other_frames": merged(hold_stats, "other"),
                     "heartbeat": hold_stats[0]["heartbeat"], "window": hold_stats[0]["window"]}
        say(f"/api/health x {args.health}, {args.sends} sends ...")
        c0, t0 = cpu_marks(groups), clock()
        r["health"] = await measure_health(port, args.health, n)
        r["push"] = await measure_pushes(port, devices, args.sends, procs)
        c1, t1 = cpu_marks(groups), clock()
        r["open_cpu_pct"] = {g: cpu_pct(c0[g], c1[g], t1 - t0) for g in c0}
        mem["with_after_sends"] = rss_kib(pid)

        say("closing every phone ...")
        closed = await ask_all(procs, {"cmd": "close"})
        r["closed_cleanly"] = all(c["all_closed"] for c in closed)
        trend = []
        for _ in range(max(1, round(args.settle))):
            await asyncio.sleep(args.settle / max(1, round(args.settle)))
            trend.append(rss_kib(pid))
        mem["after"] = trend[-1]
        r["after_trend_kib"] = trend

        say("logging in again with the session tokens ...")
        r["relogin"] = await login_wave(procs, True, args.login_concurrency, 600)
        _strip(r["relogin"])
        await asyncio.sleep(1.0)
        mem["again"] = rss_kib(pid)
        r["memory_kib"] = mem
        await ask_all(procs, {"cmd": "stats"})  # reset the counters

        say("stopping the hub (SIGTERM) with every phone connected ...")
        hub_alive[0] = False
        r["hub_stop_s"] = await stop_hub(hub, drain)
        r["hub_exit_code"] = hub.proc.returncode
        waited = await ask_all(procs, {"cmd": "wait_closed", "limit": 30})
        gone = await ask_all(procs, {"cmd": "stats"})
        r["shutdown_closes"] = merged(gone, "closes")
        r["shutdown_all_closed"] = all(w["all_closed"] for w in waited)

        say("starting the hub again on the same database ...")
        began = clock()
        hub2, drain2 = await start_hub(env, workdir, "hub2")
        stack.push_async_callback(stop_hub, hub2, drain2)
        r["hub_restart_s"] = round(clock() - began, 2)
        groups["hub"] = [hub2.proc.pid]
        say(f"queueing {args.queue_depth} message(s) for {args.queued_phones} phones ...")
        queued, errors, seconds = await queue_messages(port, devices, args.queued_phones,
                                                       args.queue_depth)
        r["queue"] = {"queued": len(queued), "errors": dict(errors), "seconds": seconds}
        await asyncio.sleep(1.0)
        mem2_before = rss_kib(hub2.proc.pid)

        say(f"reconnect storm: {n} phones at once with their session tokens ...")
        # Each phones process answers once all its phones are in (or gave up); the frames
        # carry their own arrival times, so the flush is timed from them.
        waits: dict[str, Any] = {}
        async with py_spy(hub2.proc.pid, args.py_spy, args.storm_limit), pg_waits(dsn, waits):
            c0 = cpu_marks(groups)
            storm_began = clock()
            login = await login_wave(procs, True, None, args.storm_limit)
            storm = await collect_storm(procs, queued, storm_began, args.storm_limit + 10)
        storm["pg_waits"] = waits
        storm.update({"ok": login["ok"], "failed": login["failed"],
                      "attempt_failures": login["attempt_failures"],
                      "retries": login["retries"], "auth_at_s": login["auth_at_s"],
                      "listen_overflows": login["listen_overflows"],
                      "upgrade_ms": login["upgrade_ms"], "auth_ms": login["auth_ms"],
                      "all_authed_s": round(login["last"] - storm_began, 2)
                      if login["last"] is not None and login["ok"] == n else None})
        c1 = cpu_marks(groups)
        end = max(filter(None, (login["last"], storm_began
                                + (storm["last_frame_s"] or 0))), default=storm_began)
        storm["cpu_pct"] = {g: cpu_pct(c0[g], c1[g], end - storm_began) for g in c0}
        done = storm["all_authed_s"] is not None and storm["flushed_s"] is not None
        storm["seconds"] = (round(max(storm["all_authed_s"], storm["flushed_s"]), 2)
                            if done else None)
        await asyncio.sleep(2.0)  # the last acks committed
        storm["states"] = await message_states(dsn, list(queued))
        late = await ask_all(procs, {"cmd": "stats"})
        storm["dropped_after"] = merged(late, "closes")
        storm["rss_before_kib"], storm["rss_with_kib"] = mem2_before, rss_kib(hub2.proc.pid)
        storm["health"] = await measure_health(port, 20, n)
        r["storm"] = storm
        await ask_all(procs, {"cmd": "close"})
    r["targets"] = targets(r)
    return r


def _strip(wave: dict[str, Any]) -> None:
    wave.pop("began", None)
    wave.pop("last", None)


# -- Figures and output ---------------------------------------------------------------------------


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    T = TARGETS
    m = r["memory_kib"]
    growth = m["with"] - m["before"]
    per_phone = growth / r["phones"]
    given_back = (m["with"] - m["after"]) / growth if growth > 0 else None
    r["per_phone_kib"] = round(per_phone, 2)
    r["given_back"] = round(given_back, 3) if given_back is not None else None
    storm = r["storm"]
    clean = (storm["missing"] == 0 and storm["new_attempts"] == 0
             and storm["wrong_phone"] == 0 and storm["unexpected_frames"] == 0)
    rows: list[dict[str, Any]] = []

    def row(name: str, value: float | None, goal: float, higher: bool, shown: str) -> None:
        verdict = ("FAIL" if value is None
                   else "PASS" if (value >= goal if higher else value <= goal) else "FAIL")
        rows.append({"target": name, "value": value, "goal": goal, "shown": shown,
                     "verdict": verdict})

    row("hub memory per phone (kB)", round(per_phone * 1024 / 1000, 2), T["rss_per_phone_kb"],
        False, "≤ 20 kB")
    row("growth given back after close", given_back, T["given_back"], True, "≥ 80 %")
    row("/api/health p99 (ms), all open", (r["health"]["ms"] or {}).get("p99"),
        T["health_p99_ms"], False, "≤ 50 ms")
    row("send → sms frame p99 (ms)", (r["push"]["ms"] or {}).get("p99"), T["push_p99_ms"],
        False, "≤ 50 ms")
    row("storm: all in, queues flushed (s)", storm["seconds"] if clean else None,
        T["storm_s"], False, "≤ 10 s")
    return rows


def _fmt(value: float | None, spec: str = ",.1f") -> str:
    return "-" if value is None else format(value, spec)


def _ms(s: dict[str, float | None] | None) -> str:
    if not s:
        return "-"
    return " / ".join(_fmt(s[q], ".2f") if s[q] is not None else "never"
                      for q in ("p50", "p90", "p99", "max"))


def print_table(r: dict[str, Any]) -> None:
    m = r["memory_kib"]
    print(f"smsnodes-hub capacity benchmark  {r['date']} UTC  code {r['code']}  ({r['cpus']} "
          f"CPUs, Python {r['python']}, PostgreSQL {r['postgres']}, load avg before "
          f"{r['loadavg_before']})")
    print(f"{r['phones']:,} phones in {r['phone_procs']} processes, idle {r['hold']:g} s; "
          f"open files limit {r['nofile'][0]} (hub {r['hub_nofile']}); accounts made in "
          f"{r['accounts_seconds']:g} s with cheap Argon2id (8 KiB, 1 pass, 1 lane: "
          f"SMSNODES_SECURITY_ARGON2_*, given to the hub too)"
          + hub_env_label(r))
    print()
    lg, rl = r["login"], r["relogin"]
    print(f"  password logins: {lg['ok']:,} in {lg['seconds_to_last']} s "
          f"({_fmt(lg['logins_per_s'])}/s, {r['phone_procs']} x {r.get('login_concurrency', '')}"
          f"at once), retries {lg['retries']}, failures {lg['attempt_failures'] or 'none'}, "
          f"listen queue overflows {_fmt(lg['listen_overflows'], ',')}")
    h = r["idle"]
    print(f"  idle: {h['open']:,} open after {r['hold']:g} s, dropped by the hub "
          f"{h['dropped'] or 'none'}, pings answered {h['pings_answered']:,} (heartbeat "
          f"{h['heartbeat']} s), other frames {h['other_frames'] or 'none'}; permessage-deflate "
          f"offered, accepted for {h['compressed']:,}")
    print(f"  hub RSS (KiB): before {m['before']:,}, with {m['with']:,} "
          f"(+{m['with'] - m['before']:,}: {r['per_phone_kib']} KiB per phone), after sends "
          f"{m['with_after_sends']:,}, {r['settle']:g} s after all closed {m['after']:,} "
          f"(given back {_fmt(100 * r['given_back'] if r['given_back'] is not None else None)}"
          f" %), trend {r['after_trend_kib']}")
    print(f"  token logins again: {rl['ok']:,} in {rl['seconds_to_last']} s "
          f"({_fmt(rl['logins_per_s'])}/s, listen queue overflows "
          f"{_fmt(rl['listen_overflows'], ',')}); hub RSS then {m['again']:,} KiB")
    hh, p = r["health"], r["push"]
    print(f"  /api/health x {sum(hh['statuses'].values())} (p50 / p90 / p99 / max ms): "
          f"{_ms(hh['ms'])}; statuses {hh['statuses']}, connectedDevices "
          f"{hh['connected_devices']} of {hh['expected']}")
    print(f"  send → sms frame x {p['sent']} (ms): {_ms(p['ms'])}; arrived {p['arrived']}, "
          f"wrong phone {p['wrong_phone']}, errors {p['errors'] or 'none'}")
    print("  CPU while open, % of one core: "
          + ", ".join(f"{k} {_fmt(v, '.0f')}" for k, v in r["open_cpu_pct"].items()))
    print()
    s = r["storm"]
    print(f"  hub stop (SIGTERM) with all connected: {r['hub_stop_s']} s, exit code "
          f"{r['hub_exit_code']}; close codes seen {r['shutdown_closes'] or 'none'}; "
          f"restart {r['hub_restart_s']} s")
    q = r["queue"]
    print(f"  queued while away: {q['queued']:,} messages in {q['seconds']} s, errors "
          f"{q['errors'] or 'none'}")
    print(f"  storm: {s['ok']:,} of {r['phones']:,} authenticated in "
          f"{_fmt(s['all_authed_s'], '.2f')} s (1/50/90/99 % by "
          f"{', '.join(str(v) for v in s['auth_at_s'].values())} s); retries {s['retries']}, "
          f"failed attempts {s['attempt_failures'] or 'none'}, gave up {s['failed'] or 'none'}, "
          f"listen queue overflows {_fmt(s['listen_overflows'], ',')}")
    print(f"  storm, per phone (ms, p50 / p90 / p99 / max): connected → 101 "
          f"{_ms(s['upgrade_ms'])}; 101 → auth_ok {_ms(s['auth_ms'])}")
    print(f"  storm: {s['received']:,} of {s['queued']:,} queued messages at their phones, last "
          f"after {_fmt(s['last_frame_s'], '.2f')} s; missing {s['missing']}, pushed again as a "
          f"new attempt {s['new_attempts']}, repeats of one (id, attempt) {s['repeats']}, at the "
          f"wrong phone {s['wrong_phone']}, unexpected frames {s['unexpected_frames']}")
    print(f"  storm: message states after {s['states']}; dropped afterwards "
          f"{s['dropped_after'] or 'none'}; hub RSS {s['rss_before_kib']:,} → "
          f"{s['rss_with_kib']:,} KiB; health after p99 "
          f"{_fmt((s['health']['ms'] or {}).get('p99'), '.2f')} ms, connectedDevices "
          f"{s['health']['connected_devices']}")
    print("  CPU during the storm, % of one core: "
          + ", ".join(f"{k} {_fmt(v, '.0f')}" for k, v in s["cpu_pct"].items()))
    w = s["pg_waits"]
    print(f"  PostgreSQL during the storm: {w['busy_per_sample']} busy backends on average "
          f"({w['samples']} samples); waiting on / running {w['waits']}")
    for query, count in w["queries"].items():
        print(f"    {count:>6}  {query}")
    print()
    print(f"  {'target':<38}{'value':>10}  {'goal':<10}verdict")
    for t in r["targets"]:
        v = t["value"]
        shown = ("-" if v is None else f"{100 * v:.1f} %" if "given back" in t["target"]
                 else _fmt(v, ",.2f"))
        print(f"  {t['target']:<38}{shown:>10}  {t['shown']:<10}{t['verdict']}")
    print()


def _git_describe() -> str | None:
    try:
        sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sha.strip() + ("+dirty" if dirty.strip() else "")


# -- Main -----------------------------------------------------------------------------------------


async def bench_bounded(args: argparse.Namespace, dsn: str, workdir: Path) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    say = (lambda text: None) if args.json_only else (
        lambda text: print(text, file=sys.stderr, flush=True))
    async with asyncio.timeout(args.timeout):
        result = await bench(args, dsn, workdir, say)
    result["login_concurrency"] = args.login_concurrency
    return result


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args._role == "phones":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(phones_role())
        return 0
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-cap-")))
        try:
            if args.database_url:
                dsn = args.database_url
            else:
                if not args.json_only:
                    print("starting an embedded PostgreSQL ...", file=sys.stderr, flush=True)
                dsn = stack.enter_context(EMBEDDED_POSTGRES(workdir / "db", delete=True))
            result = asyncio.run(bench_bounded(args, dsn, workdir))
        except TimeoutError:
            print(f"bench_capacity: gave up after the hard limit of {args.timeout:g} s",
                  file=sys.stderr)
            return 1
        except asyncio.CancelledError:
            print("bench_capacity: stopped", file=sys.stderr)
            return 143
        except KeyboardInterrupt:
            print("bench_capacity: interrupted", file=sys.stderr)
            return 130
        except (RuntimeError, OSError, aiohttp.ClientError, asyncpg.PostgresError,
                subprocess.SubprocessError) as exc:
            print(f"bench_capacity: {exc}", file=sys.stderr)
            return 1
    if not args.json_only:
        print_table(result)
    print(orjson.dumps(result, option=orjson.OPT_NON_STR_KEYS).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
