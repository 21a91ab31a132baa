#!/usr/bin/env python3
"""Benchmark POST /api/send-sms end to end: HTTP request -> encrypted insert -> push -> ack.

It starts everything itself: a private PostgreSQL in a temporary folder, a device account,
the hub (by default as a child process, `python -m smsnodes_hub serve`, so that the hub and
the load generator do not share one event loop), and ONE phone that acks every `sms` frame
at once and reports nothing. Then `--concurrency` callers post the SMS Nodes seed's body (one
recipient) for `--warmup` + `--duration` seconds; only requests started after the warm-up
count. It prints a table and a one-line JSON (`--json-only`: just the JSON) with:

- requests/s answered 200, errors by status (or by exception name), and the new `sms`
  frames/s reaching the phone in the same seconds (below requests/s: a backlog is growing);
- send-request latency: median, p90, p99, max, mean;
- send-to-frame latency: from just before the POST is issued to the moment the phone reads
  the `sms` frame with that messageId (both clocks are `time.perf_counter` in this process;
  a frame not seen within `--drain` seconds counts as infinitely late: "never");
- the share of 200s answered `"sentImmediately": true`, and the CPU (% of one core) used by
  the hub, this process, PostgreSQL and the rest of the machine during the measured seconds.

Usage (from the repository root)::

    .venv/bin/python scripts/bench_send.py                     # defaults: 50 callers, 10 s
    .venv/bin/python scripts/bench_send.py --window 50         # SMSNODES_DEVICE_WINDOW=50
    .venv/bin/python scripts/bench_send.py --concurrency 1     # latency without queueing
    .venv/bin/python scripts/bench_send.py --in-process        # hub on this process's loop
    .venv/bin/python scripts/bench_send.py --phone sim         # scripts/device_sim.py phone
    .venv/bin/python scripts/bench_send.py --hub-env SMSNODES_DATABASE_POOL_MAX=20
    DATABASE_URL=postgresql://me@db/postgres .venv/bin/python scripts/bench_send.py
    echo "$PW" | .venv/bin/python scripts/bench_send.py --url http://127.0.0.1:3000 \\
        --username bench-phone --password-stdin                # a hub that is already running

With `--database-url` (or $DATABASE_URL) the benchmark creates a database `bench_<random>` on
that server (the role needs CREATEDB), runs there and drops it at the end. The hub gets the
production defaults (Argon2id included: only the first login pays for it, the credential
cache serves the rest) with the send rate limit off; SMSNODES_* variables of the calling
environment are ignored, `--hub-env KEY=VALUE` sets any of them. With `--url` the running
hub's settings apply, and the benchmark's phone REPLACES that device's live connection and
acks every message it is sent (they will never go out as SMS): use a device kept for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import re
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import asyncpg
import orjson
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(ROOT))
# Shared with the other benchmark (scripts/ is on sys.path when run as a script).
from benchlib import (  # noqa: E402
    Device,
    close_phone,
    non_negative_float,
    positive_float,
    positive_int,
    postmaster_pid,
    scratch_database,
)

from smsnodes_hub import db, embedded  # noqa: E402
from smsnodes_hub.app import create_app, kdf_params  # noqa: E402
from smsnodes_hub.auth import accounts  # noqa: E402
from smsnodes_hub.auth.crypto import PasswordKdf  # noqa: E402
from smsnodes_hub.config import load_settings  # noqa: E402

# The body of the SMS Nodes seed's examples (HTTP-API.md), with the benchmark's credentials.
SEED_NUMBERS = ["+1234567890"]
SEED_MESSAGE = "Hello from SMS Nodes!"
SEED_PRIORITY = 1

HUB_START_TIMEOUT = 60.0  # the child process applies migrations before it listens
HUB_STOP_TIMEOUT = 15.0
PHONE_LOGIN_TIMEOUT = 30.0  # a password login runs Argon2id with production costs
REQUEST_TIMEOUT = 30.0
LISTENING = re.compile(r"listening on \S+?://\S+?:(\d+)")


# -- Command line -------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_send.py",
        description="Benchmark POST /api/send-sms through the hub to one phone.",
    )
    load = parser.add_argument_group("load")
    load.add_argument("--concurrency", type=positive_int, default=50,
                      help="callers posting at once, one keep-alive connection each (50)")
    load.add_argument("--duration", type=positive_float, default=10.0,
                      help="measured seconds (10)")
    load.add_argument("--warmup", type=non_negative_float, default=2.0,
                      help="seconds of load before measuring starts (2)")
    load.add_argument("--drain", type=non_negative_float, default=10.0,
                      help="at most this long after the load, wait for the frames of "
                           "measured messages still on their way (10)")
    load.add_argument("--phone", choices=("raw", "sim"), default="raw",
                      help="raw: a lean WebSocket client that acks in its read loop "
                           "(default); sim: scripts/device_sim.py's SimulatedPhone")
    hub = parser.add_argument_group("hub started by the benchmark")
    hub.add_argument("--hub-process", action=argparse.BooleanOptionalAction, default=True,
                     help="run the hub as a child process (default) or, with "
                          "--no-hub-process / --in-process, on this process's event loop")
    hub.add_argument("--in-process", dest="hub_process", action="store_false",
                     help="the same as --no-hub-process")
    hub.add_argument("--window", type=positive_int, default=None,
                     help="SMSNODES_DEVICE_WINDOW for the hub (default: the hub's, 10)")
    hub.add_argument("--hub-env", action="append", default=[], metavar="KEY=VALUE",
                     help="another setting for the hub, e.g. SMSNODES_DATABASE_POOL_MAX=20 "
                          "(repeatable)")
    hub.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or None,
                     help="a PostgreSQL server to use (default: $DATABASE_URL, else an "
                          "embedded one); a database bench_<random> is created and dropped")
    hub.add_argument("--no-sync-commit", action="store_true",
                     help="set synchronous_commit=off on the benchmark's database, to show "
                          "what waiting for the WAL flush costs (not a production setting)")
    remote = parser.add_argument_group("a hub that is already running")
    remote.add_argument("--url", help="its base URL, e.g. http://127.0.0.1:3000")
    remote.add_argument("--username", help="an existing device account kept for benchmarks")
    secret = remote.add_mutually_exclusive_group()
    secret.add_argument("--password", help="its password (visible in ps; prefer the next)")
    secret.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input")
    out = parser.add_argument_group("output")
    out.add_argument("--json-only", action="store_true", help="print only the JSON line")
    out.add_argument("--timeout", type=positive_float, default=None,
                     help="hard limit for the whole run in seconds "
                          "(default: warmup + duration + drain + 120)")
    args = parser.parse_args(argv)

    if args.url:
        if not args.username:
            parser.error("--url needs --username (and --password or --password-stdin)")
        if args.password_stdin:
            args.password = sys.stdin.readline().rstrip("\r\n")
        if not args.password:
            parser.error("--url needs --password or --password-stdin")
        if args.window is not None or args.hub_env or args.no_sync_commit:
            parser.error("--window, --hub-env and --no-sync-commit apply only to a hub the "
                         "benchmark starts; with --url the running hub's settings apply")
    elif args.username or args.password or args.password_stdin:
        parser.error("--username/--password are for --url; otherwise a device is created")
    for item in args.hub_env:
        key, sep, _ = item.partition("=")
        if not sep or not key.startswith("SMSNODES_"):
            parser.error(f"--hub-env wants SMSNODES_KEY=VALUE, got {item!r}")
    if args.timeout is None:
        args.timeout = args.warmup + args.duration + args.drain + 120.0
    return args


# -- Databases ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepared:
    device: Device
    version: str
    postmaster_pid: int | None  # when the server runs on this machine and we may see it


async def prepare_database(dsn: str, settings_env: dict[str, str], no_sync_commit: bool
                           ) -> Prepared:
    """Migrate, optionally relax commits, create the device account."""
    settings = load_settings(None, settings_env)
    device = Device(f"bench-{secrets.token_hex(4)}", secrets.token_urlsafe(18))
    conn = await db.connect(dsn)
    kdf = PasswordKdf(1)
    try:
        await db.migrate(conn)
        if no_sync_commit:
            name = await conn.fetchval("SELECT current_database()")
            await conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        await accounts.create_device(conn, kdf, kdf_params(settings), device.username,
                                     device.password)
        version = str(await conn.fetchval("SHOW server_version"))
        try:
            data_dir = await conn.fetchval("SHOW data_directory")
        except asyncpg.PostgresError:  # not a superuser: no CPU figure for PostgreSQL
            data_dir = None
    finally:
        kdf.close()
        await conn.close()
    return Prepared(device, version, postmaster_pid(data_dir))


# -- The hub ------------------------------------------------------------------------------------


class Hub(Protocol):
    base_url: str
    pid: int | None

    async def stop(self) -> None: ...


@dataclass(slots=True)
class InProcessHub:
    runner: web.AppRunner
    base_url: str
    pid: int | None = None

    @classmethod
    async def start(cls, dsn: str, env: dict[str, str]) -> InProcessHub:
        settings = load_settings(None, env)
        app = create_app(settings, dsn)
        runner = web.AppRunner(app, handle_signals=False, access_log=None,
                               shutdown_timeout=settings.server.shutdown_timeout)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
        except BaseException:
            await runner.cleanup()
            raise
        return cls(runner, f"http://{host}:{port}")

    async def stop(self) -> None:
        await self.runner.cleanup()


@dataclass(slots=True)
class ChildProcessHub:
    proc: asyncio.subprocess.Process
    base_url: str
    log_path: Path
    drain_task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    @classmethod
    async def start(cls, dsn: str, env: dict[str, str], workdir: Path) -> ChildProcessHub:
        # Only our settings: the caller's SMSNODES_* and any config.toml stay out of it.
        child_env = {k: v for k, v in os.environ.items()
                     if not k.startswith("SMSNODES_") and k != "DATABASE_URL"}
        child_env.update(env)
        child_env["DATABASE_URL"] = dsn
        # The same smsnodes_hub as ours, even from another checkout than the installed one.
        child_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
        )
        child_env["SMSNODES_SERVER_PORT"] = "0"  # the hub prints the port it got
        log_path = workdir / "hub.log"
        with log_path.open("wb") as log_file:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "smsnodes_hub", "serve",
                cwd=workdir, env=child_env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=log_file,
            )
        hub = cls(proc, "", log_path)
        try:
            async with asyncio.timeout(HUB_START_TIMEOUT):
                assert proc.stdout is not None
                while True:
                    line = await proc.stdout.readline()
                    if not line:
                        raise RuntimeError("the hub exited before listening:\n" + hub.log_tail())
                    match = LISTENING.search(line.decode(errors="replace"))
                    if match:
                        hub.base_url = f"http://127.0.0.1:{match[1]}"
                        break
        except BaseException:
            await hub.stop()
            raise
        hub.drain_task = asyncio.create_task(hub._drain_stdout())  # never let the pipe fill
        return hub

    async def _drain_stdout(self) -> None:
        assert self.proc.stdout is not None
        while await self.proc.stdout.readline():
            pass

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no hub log)"
        return "\n".join(text.splitlines()[-lines:]) or "(the hub logged nothing)"

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)  # the hub closes sockets with 1001
            try:
                await asyncio.wait_for(self.proc.wait(), HUB_STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self.drain_task is not None:
            self.drain_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.drain_task


@dataclass(slots=True)
class RemoteHub:
    base_url: str
    pid: int | None = None

    async def stop(self) -> None:
        return None


# -- Phones ---------------------------------------------------------------------------------------


class Phone(Protocol):
    arrivals: dict[int, float]  # messageId -> perf_counter() when its first sms frame was read
    sms_frames: int  # sms frames read, repeats included
    window: int | None  # from auth_ok

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class RawPhone:
    """The least a phone can do: password login, then ack each `sms` frame in the read loop
    (no task, no lock, no bookkeeping beyond one dict entry per message)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, device: Device) -> None:
        self.session = session
        self.url = url
        self.device = device
        self.arrivals: dict[int, float] = {}
        self.sms_frames = 0
        self.window: int | None = None
        self.other: Counter[str] = Counter()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ws = await self.session.ws_connect(self.url, autoping=True, max_msg_size=1 << 20)
        self._ws = ws
        try:
            await ws.send_frame(orjson.dumps({
                "type": "auth", "username": self.device.username,
                "password": self.device.password,
                "device": {"model": "bench_send", "app": "bench", "sims": 1},
            }), aiohttp.WSMsgType.TEXT)
            reply = await ws.receive(timeout=PHONE_LOGIN_TIMEOUT)
            if reply.type is not aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"phone login failed: {reply.type.name} {reply.data!r} "
                                   f"(close code {ws.close_code})")
            frame = orjson.loads(reply.data)
            if frame.get("type") != "auth_ok":
                raise RuntimeError(f"phone login refused: {frame}")
        except BaseException:
            await self.stop()
            raise
        self.window = frame.get("window")
        self._task = asyncio.create_task(self._read(ws), name="bench-phone")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        arrivals = self.arrivals
        clock = time.perf_counter
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            now = clock()
            frame = orjson.loads(msg.data)
            kind = frame.get("type")
            if kind == "sms":
                msg_id = frame["id"]
                self.sms_frames += 1
                arrivals.setdefault(msg_id, now)
                ack = orjson.dumps({"type": "ack", "id": msg_id, "attempt": frame["attempt"]})
                await ws.send_frame(ack, aiohttp.WSMsgType.TEXT)
            else:
                self.other[str(kind)] += 1

    async def stop(self) -> None:
        await close_phone(self._ws, self._task)


def _sim_phone(url: str, device: Device) -> Phone:
    """scripts/device_sim.py's SimulatedPhone, acking at once and reporting nothing, with the
    arrival time of each message recorded as its frame is dispatched."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from device_sim import PhoneBehaviour, SimulatedPhone

    class TimedPhone(SimulatedPhone):
        def __init__(self) -> None:
            super().__init__(url, device.username, device.password,
                             PhoneBehaviour(sent_delay=None, delivered_delay=None,
                                            reconnect=False))
            self.arrivals: dict[int, float] = {}
            self.sms_frames = 0

        def _on_sms(self, frame: dict[str, Any]) -> None:
            self.arrivals.setdefault(frame.get("id"), time.perf_counter())  # type: ignore[arg-type]
            self.sms_frames += 1
            super()._on_sms(frame)

    return TimedPhone()


# -- Load -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Sample:
    start: float
    end: float
    status: int | str  # HTTP status, or the exception's class name
    message_id: int | None = None
    immediate: bool | None = None


@dataclass(slots=True)
class Run:
    samples: list[Sample] = field(default_factory=list)
    measure_from: float = 0.0
    measure_to: float = 0.0


async def post_once(session: aiohttp.ClientSession, url: str, body: bytes) -> Sample:
    start = time.perf_counter()
    try:
        async with session.post(url, data=body,
                                headers={"Content-Type": "application/json"}) as resp:
            raw = await resp.read()
            status: int | str = resp.status
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return Sample(start, time.perf_counter(), type(exc).__name__)
    end = time.perf_counter()
    if status != 200:
        return Sample(start, end, status)
    answer = orjson.loads(raw)
    return Sample(start, end, 200, answer.get("messageId"), answer.get("sentImmediately"))


async def caller(session: aiohttp.ClientSession, url: str, body: bytes, stop_at: float,
                 samples: list[Sample]) -> None:
    while time.perf_counter() < stop_at:
        samples.append(await post_once(session, url, body))


async def drain(phone: Phone, run: Run, limit: float) -> None:
    """Wait (bounded) for the frames of measured messages that are still on their way."""
    wanted = {s.message_id for s in measured(run) if s.message_id is not None}
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        if wanted.issubset(phone.arrivals.keys()):
            return
        await asyncio.sleep(0.02)


def measured(run: Run) -> Iterator[Sample]:
    return (s for s in run.samples if run.measure_from <= s.start < run.measure_to)


# -- CPU accounting (Linux /proc; None elsewhere) ---------------------------------------------


def _cpu_of(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_of_tree(root: int | None) -> float | None:
    """A process and its children (PostgreSQL: the postmaster and its backends)."""
    if root is None:
        return None
    total = _cpu_of(root)
    if total is None:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == root:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _cpu_busy() -> float | None:
    try:
        line = Path("/proc/stat").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: inside user already]
    ticks = [int(v) for v in line.split()[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class CpuMark:
    at: float
    hub: float | None
    bench: float | None
    postgres: float | None
    machine: float | None

    @classmethod
    def take(cls, hub_pid: int | None, postmaster_pid: int | None) -> CpuMark:
        hub = _cpu_of(hub_pid) if hub_pid is not None else None
        return cls(time.perf_counter(), hub, _cpu_of(os.getpid()),
                   _cpu_of_tree(postmaster_pid), _cpu_busy())


def cpu_shares(a: CpuMark, b: CpuMark) -> dict[str, float | None]:
    """Per cent of one core used between two marks by the hub (when it is a child process),
    this process, PostgreSQL (when it is local), the rest of the machine, and in all."""
    seconds = b.at - a.at

    def pct(x: float | None, y: float | None) -> float | None:
        return None if x is None or y is None else round(100 * (y - x) / seconds, 1)

    shares = {"hub": pct(a.hub, b.hub), "bench": pct(a.bench, b.bench),
              "postgres": pct(a.postgres, b.postgres), "other": None,
              "machine": pct(a.machine, b.machine)}
    if shares["machine"] is not None:
        known = sum(v for k, v in shares.items() if k != "machine" and v is not None)
        # Per-process and machine counters tick separately: a small negative is noise.
        shares["other"] = max(0.0, round(shares["machine"] - known, 1))
    return shares


# -- Figures --------------------------------------------------------------------------------------


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary_ms(values: list[float]) -> dict[str, float | None] | None:
    """Median, p90, p99, max and mean in ms. A value of math.inf (a frame never seen) takes
    part in the percentiles, which come out None when they land on one; the mean is over
    the finite values."""
    if not values:
        return None
    ordered = sorted(v * 1000 for v in values)
    finite = [v for v in ordered if math.isfinite(v)]

    def shown(value: float) -> float | None:
        return round(value, 3) if math.isfinite(value) else None

    return {
        "p50": shown(_percentile(ordered, 0.50)),
        "p90": shown(_percentile(ordered, 0.90)),
        "p99": shown(_percentile(ordered, 0.99)),
        "max": shown(ordered[-1]),
        "mean": round(statistics.fmean(finite), 3) if finite else None,
    }


def figures(run: Run, phone: Phone, duration: float) -> dict[str, Any]:
    done = list(measured(run))
    ok = [s for s in done if s.status == 200]
    errors = Counter(str(s.status) for s in done if s.status != 200)
    arrivals = phone.arrivals
    to_frame = [arrivals[s.message_id] - s.start
                if s.message_id is not None and s.message_id in arrivals else math.inf
                for s in ok]
    immediate = sum(1 for s in ok if s.immediate)
    delivered = sum(1 for t in arrivals.values() if run.measure_from <= t < run.measure_to)
    return {
        "requests": len(done),
        "ok": len(ok),
        "rps": round(len(ok) / duration, 1),
        # New messages reaching the phone per second in the same window (any message's
        # first frame): below rps, the queue grows and send-to-frame latency with it.
        "frames_per_s": round(delivered / duration, 1),
        "errors": dict(sorted(errors.items())),
        "latency_ms": summary_ms([s.end - s.start for s in ok]),
        "send_to_frame_ms": summary_ms(to_frame),
        "frames_missing": sum(1 for v in to_frame if not math.isfinite(v)),
        "sent_immediately": round(immediate / len(ok), 4) if ok else None,
    }


def _row(label: str, stats: dict[str, float | None] | None) -> str:
    if stats is None:
        return f"  {label:<26}{'-':>9}"

    def cell(value: float | None) -> str:
        return f"{value:>9.2f}" if value is not None else f"{'never':>9}"

    return f"  {label:<26}" + "".join(cell(stats[k]) for k in ("p50", "p90", "p99", "max",
                                                               "mean"))


def print_table(result: dict[str, Any]) -> None:
    f = result
    hub = {"process": "separate process", "in-process": "in this process",
           "remote": f"already running at {f['url']}"}[f["hub"]]
    window = f["window"] if f["window"] is not None else "?"
    print(f"smsnodes-hub send benchmark  {f['date']}  ({f['cpus']} CPUs, Python {f['python']}, "
          f"PostgreSQL {f['postgres'] or '?'})")
    print(f"hub: {hub}, window {window}; phone: {f['phone']}; "
          f"concurrency {f['concurrency']}; {f['duration']:g} s measured after "
          f"{f['warmup']:g} s warm-up" + ("; synchronous_commit=off" if f["no_sync_commit"]
                                          else ""))
    print()
    print(f"  {'':<26}{'median':>9}{'p90':>9}{'p99':>9}{'max':>9}{'mean':>9}")
    print(_row("send request (ms)", f["latency_ms"]))
    print(_row("send -> sms frame (ms)", f["send_to_frame_ms"]))
    print()
    print(f"  {'requests/s (200)':<26}{f['rps']:>9.1f}   ({f['ok']} in {f['duration']:g} s)")
    print(f"  {'new sms frames/s':<26}{f['frames_per_s']:>9.1f}   (reaching the phone, same "
          "seconds)")
    errors = ", ".join(f"{k}: {v}" for k, v in f["errors"].items()) or "none"
    print(f"  {'errors':<26}{errors:>9}")
    share = f["sent_immediately"]
    print(f"  {'sentImmediately':<26}" + (f"{100 * share:>8.1f}%" if share is not None
                                          else f"{'-':>9}"))
    print(f"  {'frames not seen':<26}{f['frames_missing']:>9}"
          f"   (within {f['drain']:g} s after the load; phone read {f['phone_frames']} sms "
          "frames in all)")
    if f["phone_login_ms"] is not None:
        print(f"  {'phone password login (ms)':<26}{f['phone_login_ms']:>9.1f}"
              "   (Argon2id, production cost)")
    cpu = f["cpu_pct"]
    if cpu.get("machine") is not None:
        parts = [f"{name} {cpu[name]:.0f}"
                 for name in ("hub", "bench", "postgres", "other", "machine")
                 if cpu.get(name) is not None]
        print(f"  {'CPU, % of one core':<26}   " + ", ".join(parts))
        if f["loadavg_before"] is not None:
            print(f"  {'load average before':<26}{f['loadavg_before']:>9.2f}"
                  "   (other work on the machine skews every figure)")
    print()


# -- Orchestration --------------------------------------------------------------------------------


def hub_env(args: argparse.Namespace) -> dict[str, str]:
    env = {
        "SMSNODES_SERVER_HOST": "127.0.0.1",
        "SMSNODES_LIMITS_SEND_PER_MINUTE": "0",
        "SMSNODES_LOGGING_LEVEL": "warning",
    }
    if args.window is not None:
        env["SMSNODES_DEVICE_WINDOW"] = str(args.window)
    for item in args.hub_env:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def _ws_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://") + "/ws/device"
    return "ws://" + base.removeprefix("http://") + "/ws/device"


async def bench(args: argparse.Namespace, dsn: str | None, workdir: Path) -> dict[str, Any]:
    env = hub_env(args)
    postgres: str | None = None
    postmaster_pid: int | None = None
    loadavg = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    async with contextlib.AsyncExitStack() as stack:
        if args.url:
            device = Device(args.username, args.password)
            hub: Hub = RemoteHub(args.url.rstrip("/"))
            mode = "remote"
        else:
            assert dsn is not None
            if args.database_url:
                dsn = await stack.enter_async_context(scratch_database(dsn))
            prepared = await prepare_database(dsn, env, args.no_sync_commit)
            device, postgres = prepared.device, prepared.version
            postmaster_pid = prepared.postmaster_pid
            if args.hub_process:
                hub = await ChildProcessHub.start(dsn, env, workdir)
                mode = "process"
            else:
                hub = await InProcessHub.start(dsn, env)
                mode = "in-process"
        stack.push_async_callback(hub.stop)
        if not args.json_only and hub.pid is not None:
            # For a profiler: py-spy record --pid N --nonblocking
            print(f"hub: pid {hub.pid} on {hub.base_url}", file=sys.stderr, flush=True)

        connector = aiohttp.TCPConnector(limit=args.concurrency + 1, force_close=False)
        session = await stack.enter_async_context(aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        ))
        if args.phone == "raw":
            phone: Phone = RawPhone(session, _ws_url(hub.base_url), device)
        else:
            phone = _sim_phone(_ws_url(hub.base_url), device)
        login_started = time.perf_counter()
        await phone.start()
        login_ms = (time.perf_counter() - login_started) * 1000
        stack.push_async_callback(phone.stop)

        url = hub.base_url + "/api/send-sms"
        body = orjson.dumps({
            "deviceUsername": device.username, "password": device.password,
            "phoneNumbers": SEED_NUMBERS, "message": SEED_MESSAGE, "priority": SEED_PRIORITY,
        })
        first = await post_once(session, url, body)  # fails early, and fills the cred cache
        if first.status != 200:
            tail = hub.log_tail() if isinstance(hub, ChildProcessHub) else ""
            raise RuntimeError(f"the first send answered {first.status}; not benchmarking"
                               + (f"\nhub log:\n{tail}" if tail else ""))

        run = Run()
        begin = time.perf_counter()
        run.measure_from = begin + args.warmup
        run.measure_to = run.measure_from + args.duration
        callers = [caller(session, url, body, run.measure_to, run.samples)
                   for _ in range(args.concurrency)]
        cpu_task = asyncio.create_task(_cpu_window(run, hub.pid, postmaster_pid))
        await asyncio.gather(*callers)
        cpu = await cpu_task
        await drain(phone, run, args.drain)
        result = figures(run, phone, args.duration)

    window = phone.window  # what the hub announced in auth_ok
    return {
        "bench": "send-sms",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "hub": mode,
        "url": args.url,
        "phone": args.phone,
        "concurrency": args.concurrency,
        "duration": args.duration,
        "warmup": args.warmup,
        "drain": args.drain,
        "window": window,
        "no_sync_commit": args.no_sync_commit,
        "hub_env": args.hub_env,
        **result,
        "phone_frames": phone.sms_frames,
        "phone_login_ms": round(login_ms, 1) if not args.url else None,
        "cpu_pct": cpu_shares(*cpu),
        "loadavg_before": round(loadavg, 2) if loadavg is not None else None,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "asyncpg": asyncpg.__version__,
        "postgres": postgres,
    }


async def _cpu_window(run: Run, hub_pid: int | None, postmaster_pid: int | None
                      ) -> tuple[CpuMark, CpuMark]:
    await asyncio.sleep(max(0.0, run.measure_from - time.perf_counter()))
    first = CpuMark.take(hub_pid, postmaster_pid)
    await asyncio.sleep(max(0.0, run.measure_to - time.perf_counter()))
    return first, CpuMark.take(hub_pid, postmaster_pid)


async def bench_bounded(args: argparse.Namespace, dsn: str | None, workdir: Path
                        ) -> dict[str, Any]:
    async with asyncio.timeout(args.timeout):
        return await bench(args, dsn, workdir)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-send-")))
        dsn: str | None = None
        if not args.url:
            if args.database_url:
                dsn = args.database_url
            else:
                if not args.json_only:
                    print("starting an embedded PostgreSQL ...", file=sys.stderr, flush=True)
                # Blocking, and it runs its own event loop: outside ours.
                dsn = stack.enter_context(embedded.embedded_postgres(workdir / "db", delete=True))
        try:
            result = asyncio.run(bench_bounded(args, dsn, workdir))
        except TimeoutError:
            print(f"bench_send: gave up after the hard limit of {args.timeout:g} s",
                  file=sys.stderr)
            return 1
        except (RuntimeError, OSError, aiohttp.ClientError, db.DatabaseUnavailable,
                asyncpg.PostgresError) as exc:
            print(f"bench_send: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
    if not args.json_only:
        print_table(result)
    print(orjson.dumps(result).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
