"""Shared fixtures: a real PostgreSQL (DATABASE_URL, or one embedded server per test
session), a migrated template database cloned for every test, and the hub on top."""

from __future__ import annotations

import asyncio
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
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from smsnodes_hub import accounts, db
from smsnodes_hub.app import create_app, kdf_params
from smsnodes_hub.appkeys import AUTH, HUB, POOL
from smsnodes_hub.config import Settings, load_settings
from smsnodes_hub.crypto import PasswordKdf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

# Argon2id at its cheapest: tests check behaviour, not cost.
CHEAP_KDF_ENV = {
    "SMSNODES_SECURITY_ARGON2_MEMORY_KIB": "8",
    "SMSNODES_SECURITY_ARGON2_ITERATIONS": "1",
    "SMSNODES_SECURITY_ARGON2_LANES": "1",
}
PASSWORD = "correct horse battery"


def _with_database(dsn: str, name: str) -> str:
    """The same server, another database (works for host/port and unix-socket DSNs)."""
    base, sep, query = dsn.partition("?")
    scheme, _, rest = base.partition("://")
    authority, _, _old = rest.partition("/")
    return f"{scheme}://{authority}/{name}{sep}{query}"


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    """A superuser DSN on the test server."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    with tempfile.TemporaryDirectory(prefix="smsnodes-test-") as tmp:
        module = db._embedded_module()
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
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(_with_database(admin_dsn, name))
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
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    finally:
        await admin.close()
    yield _with_database(admin_dsn, name)
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def test_settings(database_url: str, **env: str) -> Settings:
    environ = {
        **CHEAP_KDF_ENV,
        "DATABASE_URL": database_url,
        "SMSNODES_SERVER_HOST": "127.0.0.1",
        "SMSNODES_SERVER_PORT": "0",
        "SMSNODES_LOGGING_LEVEL": "warning",
        "SMSNODES_DATABASE_POOL_MIN": "1",
        "SMSNODES_DATABASE_POOL_MAX": "5",
        **env,
    }
    return load_settings(None, environ)


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def database_name(dsn: str) -> str:
    return dsn.partition("?")[0].rsplit("/", 1)[1]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return test_settings(database_url)


HubFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def make_hub(
    database_url: str, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> HubFactory:
    """Start a hub (a real listening server on 127.0.0.1) with settings overridden by
    environment-style keys, e.g. `await make_hub(SMSNODES_DEVICE_WINDOW="3")`."""

    async def start(**env: str) -> TestClient:
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


async def add_device(
    db_or_app: asyncpg.Pool | web.Application | TestClient,
    username: str,
    password: str = PASSWORD,
) -> int:
    """Create a device account through the real accounts module."""
    if isinstance(db_or_app, TestClient):
        db_or_app = db_or_app.app
    if isinstance(db_or_app, web.Application):
        pool = db_or_app[POOL]
        params = db_or_app[AUTH].params
        kdf = db_or_app[AUTH].kdf
    else:
        pool = db_or_app
        params = kdf_params(load_settings(None, CHEAP_KDF_ENV))
        kdf = PasswordKdf(1)
    async with pool.acquire() as conn:
        return await accounts.create_device(conn, kdf, params, username, password)


def ws_url(client: TestClient) -> str:
    return str(client.make_url("/ws/device")).replace("http://", "ws://")


def hub_of(client: TestClient) -> Any:
    return client.app[HUB]


@pytest.fixture
def cheap_settings_env() -> dict[str, str]:
    return dict(CHEAP_KDF_ENV)


def settings_with(settings: Settings, **sections: Any) -> Settings:
    return replace(settings, **sections)
