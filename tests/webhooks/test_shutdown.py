"""A webhook receiver that accepts the connection and never answers does not hold up the
hub's shutdown: `serve`, as a real process stopped by a signal, exits within
`server.shutdown_timeout`, and the delivery it abandoned is handed back for the next start."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from device_sim import SimulatedPhone

from smsnodes_hub.appkeys import BUS, KEYRING, POOL, SETTINGS
from smsnodes_hub.webhooks.delivery import DeliveryWorker
from smsnodes_hub.webhooks.hubkey import HubKeys
from tests.cli.test_cli import cli_env
from tests.cli.test_serve import LISTENING
from tests.support import PASSWORD, add_device, basic, until

SHUTDOWN_TIMEOUT = 3.0


class SilentReceiver:
    """A TCP listener on 127.0.0.1 that accepts every connection, reads nothing and never
    answers: the receiver the hub's requests hang on."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.accepted: list[socket.socket] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self.sock)
            self.accepted.append(conn)

    def start(self) -> None:
        self._task = asyncio.create_task(self._accept())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
async def silent() -> AsyncIterator[SilentReceiver]:
    receiver = SilentReceiver()
    receiver.start()
    yield receiver
    await receiver.close()


async def test_shutdown_does_not_wait_for_a_receiver_that_never_answers(
    database_url: str, tmp_path: Path, pool: asyncpg.Pool, silent: SilentReceiver
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsnodes_hub", "serve", "--host", "127.0.0.1", "--port", "0",
        cwd=tmp_path,
        env=cli_env(DATABASE_URL=database_url,
                    SMSNODES_SERVER_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT),
                    SMSNODES_WEBHOOKS_ALLOW_HTTP="true", SMSNODES_WEBHOOKS_ALLOW_PRIVATE="true",
                    # Far longer than the shutdown may take: the request must be abandoned.
                    SMSNODES_WEBHOOKS_TIMEOUT="60"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        while (found := LISTENING.search(
                (await asyncio.wait_for(proc.stdout.readline(), 60)).decode())) is None:
            pass
        base = f"http://127.0.0.1:{found.group(2)}"
        await add_device(pool, "shop-phone-1")
        async with aiohttp.ClientSession(base) as http:
            resp = await http.post("/api/webhooks", headers=basic(), json={
                "url": f"http://127.0.0.1:{silent.port}/hook", "events": ["device.online"]})
            assert resp.status == 201, await resp.text()
        async with SimulatedPhone(f"{base.replace('http', 'ws')}/ws/device", "shop-phone-1",
                                  PASSWORD):
            # The device.online delivery is under way: connected, its request sent, unanswered.
            await until(lambda: silent.accepted, message="the hub never called the receiver")
            await until(lambda: pool.fetchval(
                "SELECT locked_until IS NOT NULL FROM webhook_deliveries"))
            began = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 60)
            took = time.monotonic() - began
        assert code == 0, (await proc.stderr.read()).decode()
        assert took < SHUTDOWN_TIMEOUT, took
        # Abandoned, not lost: handed back at once for whichever process starts next.
        row = await pool.fetchrow("SELECT state, locked_until, attempts FROM webhook_deliveries")
        assert row is not None and tuple(row) == ("pending", None, 0)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_stop_that_comes_with_a_wake_up_still_stops(hub: TestClient) -> None:
    # The worker idles waiting for a wake-up; a stop that lands in the same turns of the
    # loop as one (an event committed as the hub shuts down) must still end it. Each run
    # puts the stop a few more turns after the wake-up.
    app = hub.app
    for turns in range(8):
        worker = DeliveryWorker(app[SETTINGS].webhooks, app[POOL], app[KEYRING], app[BUS],
                                HubKeys(app[SETTINGS]))
        await worker.start()
        await asyncio.sleep(0.05)  # past its first claim, waiting
        worker.wake()
        for _ in range(turns):
            await asyncio.sleep(0)
        async with asyncio.timeout(5):
            await worker.stop()
