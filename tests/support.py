"""Helpers shared by the tests (fixtures live in conftest.py): settings, databases, device
accounts, the send and read calls most tests make, one way to wait for a condition, and
self-signed certificates for real TLS sockets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from smsnodes_hub.app import kdf_params
from smsnodes_hub.appkeys import AUTH, POOL
from smsnodes_hub.auth import accounts, owners, tokens
from smsnodes_hub.auth.crypto import PasswordKdf
from smsnodes_hub.bus import CHANNEL
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


@dataclass(frozen=True, slots=True)
class Seeded:
    """An account with one of everything a caller can name by id (seed_account)."""

    username: str  # the account's name: Basic with it means its phone if that shares it
    device_id: int  # its phone's
    message_id: int
    inbound_id: int
    webhook_id: int | None
    api_token: str  # the phone's (pinned)
    api_token_id: int
    session_token: str  # the phone's session
    session_token_id: int
    idempotency_key: str
    account_token: str  # the account's own (routed)
    account_token_id: int
    phone: str = ""  # its phone's name; "" when it is `username`

    def auth(self) -> dict[str, str]:
        return basic(self.username)


async def seed_account(client: TestClient, username: str, *,
                       webhook: dict[str, Any] | None = None, phone: str = "") -> Seeded:
    """A device account (an account and its phone, both `username`), or with `phone` an
    account of its own (`account add username`) with that phone (`device add phone
    --account username`); through the real API and socket: a phone session (its token), a
    webhook when `webhook` (the POST body) is given, then an inbound SMS (a delivery for a
    webhook that listens to sms.received), a message sent with an Idempotency-Key (pushed to
    the phone and left un-acked; routed, with an account of its own), an API token of the
    phone and one of the account. The phone hangs up at the end."""
    from tests.wsclient import RawPhone  # wsclient is for the tests that need a raw phone

    if phone:
        await add_account(client, username)
        device_id = await add_phone(client, username, phone)
    else:
        device_id = await add_device(client, username)
    auth = basic(username)
    webhook_id = None
    if webhook is not None:
        resp = await client.post("/api/webhooks", json=webhook, headers=auth)
        assert resp.status == 201, await resp.text()
        webhook_id = (await resp.json())["id"]
    raw = await RawPhone.login(ws_url(client), phone or username, PASSWORD)
    try:
        await raw.send({"type": "inbound", "ref": f"seed-{username}", "from": "+15550001",
                        "message": f"hello {username}"})
        assert (await raw.recv_type("ok"))["ref"] == f"seed-{username}"
        key = f"seed-key-{username}"
        resp = await client.post("/api/send-sms", headers={"Idempotency-Key": key}, json={
            "deviceUsername": username, "password": PASSWORD, "phoneNumbers": [NUMBER],
            "message": f"from {username}"})
        assert resp.status == 200, await resp.text()
        message_id = (await resp.json())["messageId"]
        assert (await raw.recv_type("sms"))["id"] == message_id
    finally:
        await raw.close()
    resp = await client.post("/api/tokens", json={"name": "seed"},
                             headers=basic(phone or username))
    assert resp.status == 201, await resp.text()
    api = await resp.json()
    listed = await get(client, "/api/tokens", auth)
    session_id = next(t["id"] for t in listed["data"] if t["kind"] == "session")
    inbound_id = (await get(client, "/api/inbound", auth))["data"][0]["id"]
    own_id, own = await account_token(client, username)
    return Seeded(username, device_id, message_id, inbound_id, webhook_id, api["token"],
                  api["id"], raw.auth["token"], session_id, key, own, own_id, phone)


async def account_token(client: TestClient, account: str,
                        password: str = PASSWORD) -> tuple[int, str]:
    """(id, token) of a new token of the account itself (routed), made as `token create
    --account` makes it: also for an account whose name is its phone's, where Basic means
    the phone."""
    pool, params, kdf = _kdf_of(client)
    owner = await owners.login_account(pool, kdf, params, account, password)
    assert owner is not None, f"account {account!r} did not log in"
    info, token = await tokens.create_api_token(pool, owner, "seed (account)")
    return info.id, token


# -- Raw HTTP ----------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return orjson.loads(self.body)


async def raw_request(host: str, port: int, head: bytes, body: bytes) -> Reply | None:
    """One request on its own connection, sent as given (`head` is the request line and the
    header lines, without the blank line); the answer read to the end. None when the hub
    reset the connection before any answer arrived (it refused the request before reading
    all of it, and the kernel threw away its answer with the unread bytes)."""
    reader, writer = await asyncio.open_connection(host, port)
    received = bytearray()

    async def read_all() -> None:
        with contextlib.suppress(ConnectionError):
            while piece := await reader.read(65536):
                received.extend(piece)

    reading = asyncio.create_task(read_all())
    try:
        writer.write(head + b"\r\n\r\n" + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()  # answered (413, 400) and closed before taking it all
        await reading
    finally:
        reading.cancel()
        writer.close()
    raw = bytes(received)
    if not raw:
        return None
    status_line, _, rest = raw.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    assert status_line.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), raw[:200]
    headers: dict[str, str] = {}
    for line in header_block.split(b"\r\n"):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        payload = _unchunk(payload)
    return Reply(int(status_line.split()[1]), headers, payload)


def _unchunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return bytes(out)


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


class BusTap:
    """The hub's bus as another process hears it: a LISTEN connection of its own."""

    MARK = "smsnodes_test_mark"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    def _on_notify(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        self.heard.put_nowait((channel, payload))

    async def published(self, timeout: float = 10.0) -> list[str]:
        """The bus's payloads committed so far: a mark NOTIFYed now arrives after every
        one committed before it (PostgreSQL delivers them in commit order)."""
        mark = f"{id(self)}-{asyncio.get_running_loop().time()}"
        await self.conn.execute("SELECT pg_notify($1, $2)", self.MARK, mark)
        seen: list[str] = []
        async with asyncio.timeout(timeout):
            while (heard := await self.heard.get()) != (self.MARK, mark):
                if heard[0] != self.MARK:
                    seen.append(heard[1])
        return seen


@contextlib.asynccontextmanager
async def bus_tap(dsn: str) -> AsyncIterator[BusTap]:
    conn = await asyncpg.connect(dsn)
    tap = BusTap(conn)
    try:
        await conn.add_listener(CHANNEL, tap._on_notify)
        await conn.add_listener(BusTap.MARK, tap._on_notify)
        yield tap
    finally:
        await conn.close()


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


def plan_indexes(plan: dict[str, Any]) -> set[str]:
    """The names of the indexes an EXPLAIN (FORMAT JSON) plan node and its children read."""
    found = {str(plan["Index Name"])} if "Index Name" in plan else set()
    for child in plan.get("Plans", []):
        found |= plan_indexes(child)
    return found
