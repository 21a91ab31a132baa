#!/usr/bin/env python3
"""Benchmark password logins: how many per second the hub checks, against what the cores
allow, both measured in the same run.

It starts a private PostgreSQL in a temporary folder (or uses a scratch database on
`--database-url` / $DATABASE_URL), the hub in this process with the production Argon2id
costs and the credential cache OFF (so every login runs Argon2id), and one device account
per caller (distinct passwords: a burst of one password would share one run). Then:

1. one derivation alone, `--samples` times in a row: its median wall time, and its CPU time
   (core-seconds; with `argon2_lanes` > 1 one derivation uses several cores at once);
2. `--concurrency` callers log in over and over (GET /api/device with Basic) for `--warmup`
   + `--duration` seconds; logins answered 200 in the measured seconds count.

It prints both figures and the target of issue 15: logins/s >= (cores / one derivation's
time) x 0.8, with the time as wall time and as CPU time (the fair ceiling when a derivation
already spreads over several cores), and a one-line JSON.

Usage (from the repository root)::

    .venv/bin/python scripts/bench_logins.py                    # 5 s, 4 callers per core
    .venv/bin/python scripts/bench_logins.py --duration 2 --hub-env SMSNODES_SECURITY_ARGON2_LANES=1
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import non_negative_float, positive_float, positive_int, scratch_database  # noqa: E402

from smsnodes_hub import embedded  # noqa: E402
from smsnodes_hub.app import create_app  # noqa: E402
from smsnodes_hub.appkeys import AUTH, POOL  # noqa: E402
from smsnodes_hub.auth import accounts, crypto  # noqa: E402
from smsnodes_hub.config import load_settings  # noqa: E402


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    cores = crypto.cpu_count()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=positive_int, default=4 * cores,
                        help=f"callers logging in at once, one account each (default {4 * cores})")
    parser.add_argument("--duration", type=positive_float, default=5.0,
                        help="measured seconds (default 5)")
    parser.add_argument("--warmup", type=non_negative_float, default=1.0,
                        help="seconds of logins before measuring (default 1)")
    parser.add_argument("--samples", type=positive_int, default=5,
                        help="lone derivations timed (default 5)")
    parser.add_argument("--hub-env", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the hub, e.g. SMSNODES_SECURITY_KDF_CONCURRENCY=2")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or None,
                        help="a PostgreSQL server to use (default: a private embedded one); "
                             "a database bench_<random> is created and dropped")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON line")
    return parser.parse_args(argv)


def lone_derivations(params: crypto.KdfParams, samples: int) -> tuple[float, float]:
    """Median wall and CPU seconds of one derivation with nothing else running."""
    walls, cpus = [], []
    for i in range(samples + 1):
        wall, cpu = time.perf_counter(), time.process_time()
        crypto.derive_password_keys(f"lone password {i}", crypto.new_salt(), params)
        if i:  # the first run pays for first-touching its memory
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def basic(username: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def bench(args: argparse.Namespace, dsn: str) -> dict[str, Any]:
    env = {"SMSNODES_SERVER_HOST": "127.0.0.1", "SMSNODES_LOGGING_LEVEL": "warning",
           "SMSNODES_SECURITY_CREDENTIAL_CACHE_SECONDS": "0",
           "SMSNODES_LIMITS_SEND_PER_MINUTE": "0"}
    env.update(item.partition("=")[::2] for item in args.hub_env)
    settings = load_settings(None, env)
    app = create_app(settings, dsn)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        auth = app[AUTH]
        users = [(f"bench-login-{i}", f"bench password {i}") for i in range(args.concurrency)]

        async def add(username: str, password: str) -> None:
            async with app[POOL].acquire() as conn:
                await accounts.create_device(conn, auth.kdf, auth.params, username, password)

        await asyncio.gather(*(add(*user) for user in users))
        wall, cpu = await asyncio.to_thread(lone_derivations, auth.params, args.samples)

        counted: list[float] = []
        failures: dict[str, int] = {}
        start = time.perf_counter()
        measure_from, measure_to = start + args.warmup, start + args.warmup + args.duration
        runs_before = runs = 0

        async def caller(session: aiohttp.ClientSession, username: str, password: str) -> None:
            headers = basic(username, password)
            while time.perf_counter() < measure_to:
                async with session.get(base + "/api/device", headers=headers) as resp:
                    await resp.read()
                    done = time.perf_counter()
                if resp.status != 200:
                    failures[str(resp.status)] = failures.get(str(resp.status), 0) + 1
                elif measure_from <= done <= measure_to:
                    counted.append(done)

        async def note_runs() -> None:
            nonlocal runs_before, runs
            await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
            runs_before = auth.kdf.runs
            await asyncio.sleep(max(0.0, measure_to - time.perf_counter()))
            runs = auth.kdf.runs - runs_before

        connector = aiohttp.TCPConnector(limit=args.concurrency + 1)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(note_runs(), *(caller(session, *user) for user in users))
    finally:
        await runner.cleanup()

    cores = crypto.cpu_count()
    logins = len(counted) / args.duration
    target_wall = cores / wall * 0.8
    target_cpu = cores / cpu * 0.8
    return {
        "bench": "logins", "cores": cores, "kdf_concurrency": auth.kdf.concurrency,
        "argon2": {"memory_kib": auth.params.memory_kib, "iterations": auth.params.iterations,
                   "lanes": auth.params.lanes},
        "callers": args.concurrency, "duration": args.duration,
        "derivation_wall_ms": round(wall * 1000, 1), "derivation_cpu_ms": round(cpu * 1000, 1),
        "logins_per_s": round(logins, 2), "argon2_runs_per_s": round(runs / args.duration, 2),
        "target_by_wall": round(target_wall, 2), "target_by_cpu": round(target_cpu, 2),
        "meets_by_wall": logins >= target_wall, "meets_by_cpu": logins >= target_cpu,
        "failures": failures,
    }


def report(result: dict[str, Any]) -> None:
    a = result["argon2"]
    print(f"Argon2id {a['memory_kib']} KiB, {a['iterations']} passes, {a['lanes']} lanes; "
          f"{result['cores']} cores, {result['kdf_concurrency']} derivations at once, "
          f"{result['callers']} callers for {result['duration']:g} s")
    print(f"one derivation alone: {result['derivation_wall_ms']} ms wall, "
          f"{result['derivation_cpu_ms']} ms CPU")
    print(f"password logins/s:    {result['logins_per_s']}"
          f"  (Argon2id runs/s {result['argon2_runs_per_s']})")
    for kind in ("wall", "cpu"):
        verdict = "met" if result[f"meets_by_{kind}"] else "NOT met"
        print(f"target (cores / {kind} time) x 0.8: {result[f'target_by_{kind}']}  {verdict}")
    if result["failures"]:
        print(f"failed logins by status: {result['failures']}")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)

    async def run(server: str, scratch: bool) -> dict[str, Any]:
        if not scratch:
            return await bench(args, server)
        async with scratch_database(server) as dsn:
            return await bench(args, dsn)

    with contextlib.ExitStack() as stack:
        if args.database_url:
            result = asyncio.run(run(args.database_url, True))
        else:
            if not args.json_only:
                print("starting an embedded PostgreSQL ...", file=sys.stderr, flush=True)
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-logins-")))
            dsn = stack.enter_context(embedded.embedded_postgres(folder, delete=True,
                                                                 notice=lambda _text: None))
            result = asyncio.run(run(dsn, False))
    if not args.json_only:
        report(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
