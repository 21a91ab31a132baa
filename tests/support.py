"""Helpers shared by the tests (fixtures live in conftest.py): settings, databases, device
accounts, the send and read calls most tests make, one way to wait for a condition, and
self-signed certificates for real TLS sockets."""

from __future__ import annotations

import asyncio
import base64
import inspect
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from smsnodes_hub.app import kdf_params
from smsnodes_hub.appkeys import AUTH, POOL
from smsnodes_hub.auth import accounts, owners
from smsnodes_hub.auth.crypto import PasswordKdf
from smsnodes_hub.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent

# Argon2id at its cheapest: tests check behaviour, not cost.
CHEAP_KDF_ENV = {
    "SMSNODES_SECURITY_ARGON2_MEMORY_KIB": "8",
    "SMSNODES_SECURITY_ARGON2_ITERATIONS": "1",
    "SMSNODES_SECURITY_ARGON2_LANES": "1",
}
PASSWORD = "correct horse battery"
NUMBER = "+1234567890"

HubFactory = Callable[..., Awaitable[TestClient]]


# -- Settings and databases ----------------------------------------------------------------


def with_database(dsn: str, name: str) -> str:
    """The same server, another database (works for host/port and unix-socket DSNs)."""
    base, sep, query = dsn.partition("?")
    scheme, _, rest = base.partition("://")
    authority, _, _old = rest.partition("/")
    return f"{scheme}://{authority}/{name}{sep}{query}"


def database_name(dsn: str) -> str:
    return dsn.partition("?")[0].rsplit("/", 1)[1]


async def create_database(admin_dsn: str, name: str, template: str | None = None) -> str:
    """CREATE DATABASE (empty, or cloned from `template`); returns its DSN."""
    clause = f' TEMPLATE "{template}"' if template else ""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await admin.close()
    return with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, name: str) -> None:
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


# -- Accounts and calls --------------------------------------------------------------------


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


def _kdf_of(db_or_app: asyncpg.Pool | web.Application | TestClient
            ) -> tuple[asyncpg.Pool, Any, PasswordKdf]:
    if isinstance(db_or_app, TestClient):
        db_or_app = db_or_app.app
    if isinstance(db_or_app, web.Application):
        return db_or_app[POOL], db_or_app[AUTH].params, db_or_app[AUTH].kdf
    return db_or_app, kdf_params(load_settings(None, CHEAP_KDF_ENV)), PasswordKdf(1)


async def add_account(db_or_app: asyncpg.Pool | web.Application | TestClient, name: str,
                      password: str = PASSWORD) -> int:
    """Create an account without phones (ACCOUNTS.md) through the real owners module."""
    pool, params, kdf = _kdf_of(db_or_app)
    async with pool.acquire() as conn:
        return await owners.create_account(conn, kdf, params, name, password)


async def add_phone(db_or_app: asyncpg.Pool | web.Application | TestClient, account: str,
                    username: str, password: str = PASSWORD,
                    account_password: str = PASSWORD) -> int:
    """Add a phone to an existing account, opening its key with the account's password."""
    pool, params, kdf = _kdf_of(db_or_app)
    owner = await owners.login_account(pool, kdf, params, account, account_password)
    assert owner is not None, f"account {account!r} did not log in"
    return await owners.add_phone(pool, kdf, params, owner, username, password)


def from_address(client: TestClient, address: str) -> aiohttp.ClientSession:
    """A session to `client`'s hub whose connections come from `address` (any 127.x.y.z):
    another client, as far as the hub can tell. Use it with `async with`."""
    return aiohttp.ClientSession(
        base_url=str(client.make_url("")),
        connector=aiohttp.TCPConnector(local_addr=(address, 0)),
    )


def ws_url(client: TestClient) -> str:
    return str(client.make_url("/ws/device")).replace("http://", "ws://")


def basic(username: str = "shop-phone-1", password: str = PASSWORD) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def get(client: Any, path: str, headers: dict[str, str] | None = None,
              status: int = 200) -> Any:
    resp = await client.get(path, headers=basic() if headers is None else headers)
    body = await resp.json()
    assert resp.status == status, body
    return body


async def send(client: Any, username: str = "shop-phone-1", *, priority: int = 1,
               text: str = "hello", numbers: list[str] | None = None) -> dict[str, Any]:
    resp = await client.post("/api/send-sms", json={
        "deviceUsername": username, "password": PASSWORD,
        "phoneNumbers": numbers or [NUMBER], "message": text, "priority": priority,
    })
    body = await resp.json()
    assert resp.status == 200, body
    return body


# -- Waiting -------------------------------------------------------------------------------


async def until(check: Callable[[], Any], timeout: float = 10.0,
                message: str = "condition not reached in time") -> Any:
    """Poll `check` (plain or async) until it returns something truthy; return that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert loop.time() < deadline, message
        await asyncio.sleep(0.05)


# -- TLS -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


def self_signed(folder: Path, common_name: str = "127.0.0.1") -> Certificate:
    """A certificate for 127.0.0.1, valid for a day, that clients are told to trust. Two
    that are trusted at once need different names: OpenSSL finds an issuer by its name."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    paths = Certificate(folder / "cert.pem", folder / "key.pem")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return paths
