"""`serve --workers N`: N full hub processes answer on one port and stop together."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import asyncpg

from tests.cli.test_serve import LISTENING
from tests.support import CHEAP_KDF_ENV, PASSWORD, add_device, send, until
from tests.wsclient import RawPhone


async def test_two_workers_share_the_port_deliver_across_processes_and_stop_together(
        database_url: str, tmp_path: Path, pool: asyncpg.Pool) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsnodes_hub", "serve", "--host", "127.0.0.1", "--port", "0",
        "--workers", "2", cwd=tmp_path,
        env={**os.environ, **CHEAP_KDF_ENV, "DATABASE_URL": database_url,
             "SMSNODES_SERVER_SHUTDOWN_TIMEOUT": "2"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        match = LISTENING.search(line)
        assert match and "2 workers" in line, line
        base = f"http://127.0.0.1:{match[2]}"
        # Both workers are full hubs: each registers its process.
        await until(lambda: pool.fetchval("SELECT count(*) = 2 FROM hub_processes"), 30)
        await add_device(pool, "shop-phone-1")
        phone = await RawPhone.login(base.replace("http", "ws") + "/ws/device",
                                     "shop-phone-1", PASSWORD)
        # Whichever worker answers each send, the phone (on one of them) gets every message.
        async with aiohttp.ClientSession() as session:
            class Client:  # tests.support.send's client: one new connection per request
                @staticmethod
                def post(path: str, json: object) -> object:
                    return session.post(f"{base}{path}", json=json,
                                        headers={"Connection": "close"})

            sent = [(await send(Client, text=f"m{i}"))["messageId"] for i in range(6)]
        frames = await phone.recv_sms(6, timeout=15)
        assert sorted(f["id"] for f in frames) == sorted(sent)
        proc.send_signal(signal.SIGINT)
        assert await phone.closed_with(timeout=15) == 1001
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        await phone.close()
        assert await pool.fetchval("SELECT count(*) FROM hub_processes") == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_workers_must_be_a_count_or_auto(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsnodes_hub", "serve", "--workers", "zero", cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"--workers: must be a number or 'auto'" in err
