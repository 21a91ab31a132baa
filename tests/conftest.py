"""Shared fixtures: a real PostgreSQL (DATABASE_URL, or one embedded server per test
session), a migrated template database cloned for every test, and the hub on top.
Plain helpers live in tests/support.py."""

from __future__ import annotations

import asyncio
import atexit
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from smsnodes_hub import db, embedded
from smsnodes_hub.app import create_app
from smsnodes_hub.config import Settings
from tests.netguard import sitecustomize as netguard
from tests.support import (
    ROOT,
    HubFactory,
    create_database,
    drop_database,
    test_settings,
)
from tests.webhooks.receiver import Receiver, serve_receiver

sys.path.insert(0, str(ROOT / "scripts"))


def _stay_on_loopback() -> None:
    """The network guard (tests/netguard/sitecustomize.py) in this process and, through
    PYTHONPATH, in every Python subprocess that inherits the environment."""
    fd, log = tempfile.mkstemp(prefix="smsnodes-netguard-", suffix=".log")
    os.close(fd)
    atexit.register(lambda: Path(log).unlink(missing_ok=True))
    os.environ[netguard.LOG_ENV] = log
    here = str(Path(netguard.__file__).parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [here, *filter(None, [os.environ.get("PYTHONPATH")])])
    netguard.install()


_stay_on_loopback()


@pytest.fixture(autouse=True)
def _no_connection_left_the_machine() -> Iterator[None]:
    # Refused connects raise where they happen, but the code under test may catch that (a
    # webhook attempt records "cannot connect"): the test fails here anyway.
    yield
    refused = netguard.take_refusals()
    if refused:
        pytest.fail("\n".join(refused), pytrace=False)


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    """A superuser DSN on the test server."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    with tempfile.TemporaryDirectory(prefix="smsnodes-test-") as tmp:
        module = embedded._embedded_module()
        server = module.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        # Durability is not under test here, speed is welcome.
        server.psql("ALTER SYSTEM SET fsync = off; ALTER SYSTEM SET synchronous_commit = off;"
                    "ALTER SYSTEM SET full_page_writes = off; SELECT pg_reload_conf();")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


@pytest.fixture(scope="session")
def template_name(admin_dsn: str) -> str:
    name = f"smsnodes_template_{os.getpid()}"

    async def build() -> None:
        await drop_database(admin_dsn, name)
        conn = await asyncpg.connect(await create_database(admin_dsn, name))
        try:
            await db.migrate(conn)
        finally:
            await conn.close()

    asyncio.run(build())
    return name


@pytest.fixture
async def database_url(admin_dsn: str, template_name: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield await create_database(admin_dsn, name, template=template_name)
    await drop_database(admin_dsn, name)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return test_settings(database_url)


@pytest.fixture
async def make_hub(
    database_url: str, aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path
) -> HubFactory:
    """Start a hub (a real listening server on 127.0.0.1) with settings overridden by
    environment-style keys, e.g. `await make_hub(SMSNODES_DEVICE_WINDOW="3")`. Its data
    folder (the dashboard's session key file) is the test's own, never the repository's
    var/."""

    async def start(**env: str) -> TestClient:
        env.setdefault("SMSNODES_DATABASE_DATA_DIR", str(tmp_path / "data"))
        settings = test_settings(database_url, **env)
        app = create_app(settings, database_url, migrate=False)
        return await aiohttp_client(TestServer(app, host="127.0.0.1"))

    return start


@pytest.fixture
async def hub(make_hub: HubFactory) -> TestClient:
    return await make_hub()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool of the test's own, for setting up and inspecting the database."""
    p = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    assert p is not None
    yield p
    await p.close()


def settings_with(settings: Settings, **sections: Any) -> Settings:
    return replace(settings, **sections)


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    """The user's webhook receiver: plain HTTP on 127.0.0.1 (tests/webhooks/receiver.py)."""
    return await serve_receiver(aiohttp_server)
