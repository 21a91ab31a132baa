"""`smsnodes-hub serve` as a user runs it: a real process, its printed URL, TLS, Ctrl-C."""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import CHEAP_KDF_ENV, PASSWORD, add_device
from tests.wsclient import RawPhone

LISTENING = re.compile(r"listening on (https?)://localhost:(\d+)")


@asynccontextmanager
async def serving(database_url: str, tmp_path: Path, **env: str) -> AsyncIterator[
        tuple[asyncio.subprocess.Process, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsnodes_hub", "serve", "--host", "127.0.0.1", "--port", "0",
        cwd=tmp_path,
        env={**os.environ, **CHEAP_KDF_ENV, "DATABASE_URL": database_url, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    match = LISTENING.search(line)
    assert match, line
    try:
        yield proc, f"{match[1]}://127.0.0.1:{match[2]}"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_serve_prints_its_url_and_stops_cleanly_on_ctrl_c(database_url, tmp_path, pool):
    async with serving(database_url, tmp_path) as (proc, base):
        async with aiohttp.ClientSession() as session, session.get(
            f"{base}/api/health"
        ) as resp:
            body = await resp.json()
        assert resp.status == 200 and body["ssl"] is False
        await add_device(pool, "shop-phone-1")
        phone = await RawPhone.login(base.replace("http", "ws") + "/ws/device",
                                     "shop-phone-1", PASSWORD)
        proc.send_signal(signal.SIGINT)
        assert await phone.closed_with(timeout=10) == 1001
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        await phone.session.close()
    # The process left the presence tables as it found them.
    assert await pool.fetchval("SELECT count(*) FROM hub_processes") == 0
    assert await pool.fetchval("SELECT count(*) FROM device_sessions") == 0


def _somaxconn() -> int:
    """The kernel's cap on listen backlogs (Linux; elsewhere assumed large)."""
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return 1 << 16


async def test_a_fleet_reconnecting_at_once_waits_in_the_listen_queue(database_url, tmp_path):
    """After a restart every phone reconnects at the same moment. While the hub is too busy
    to accept them, the kernel must hold them all: a phone past a short backlog has its
    connection dropped and tries again only seconds later."""
    fleet = 300  # well past aiohttp's default backlog of 128
    if _somaxconn() <= fleet:
        pytest.skip("this kernel caps every listen backlog below the fleet")
    async with serving(database_url, tmp_path) as (proc, base):
        port = int(base.rsplit(":", 1)[1])
        proc.send_signal(signal.SIGSTOP)  # the hub accepts nothing: all must wait queued
        writers: list[asyncio.StreamWriter] = []
        try:
            async def connect() -> None:
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writers.append(writer)

            # Past the backlog, a connection would not complete while the hub is stopped.
            await asyncio.wait_for(asyncio.gather(*(connect() for _ in range(fleet))), 30)
            assert len(writers) == fleet
        finally:
            proc.send_signal(signal.SIGCONT)
            for writer in writers:
                writer.close()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "hub.crt", tmp_path / "hub.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


async def test_tls_serves_https_and_wss_and_health_says_so(database_url, tmp_path, pool):
    cert, key = _self_signed(tmp_path)
    env = {"SMSNODES_SERVER_TLS_CERT": str(cert), "SMSNODES_SERVER_TLS_KEY": str(key)}
    async with serving(database_url, tmp_path, **env) as (_proc, base):
        assert base.startswith("https://")
        trust = ssl.create_default_context(cafile=str(cert))
        trust.check_hostname = False
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/api/health", ssl=trust) as resp:
                body = await resp.json()
            assert resp.status == 200 and body["ssl"] is True
            await add_device(pool, "shop-phone-1")
            ws = await session.ws_connect(base.replace("https", "wss") + "/ws/device", ssl=trust)
            await ws.send_json({"type": "auth", "username": "shop-phone-1",
                                "password": PASSWORD})
            assert (await ws.receive_json(timeout=5))["type"] == "auth_ok"
            await ws.close()
