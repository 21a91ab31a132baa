"""The test set-up's network guard (tests/netguard/sitecustomize.py): nothing a test runs
reaches beyond loopback, in this process or in a Python subprocess. 192.0.2.1 and
2001:db8::1 are documentation addresses: even unguarded, nothing would answer there."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.netguard import sitecustomize as netguard

OUTSIDE = [("192.0.2.1", 9), ("2001:db8::1", 9), ("::ffff:192.0.2.1", 9), ("10.0.0.1", 5432)]


def test_a_connect_beyond_loopback_is_refused_before_it_is_made() -> None:
    for address in OUTSIDE:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock, \
                pytest.raises(netguard.NetworkGuardError, match="tests stay on loopback"):
            sock.connect(address)
    with pytest.raises(netguard.NetworkGuardError):
        socket.create_connection(("192.0.2.1", 9), timeout=1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
            pytest.raises(netguard.NetworkGuardError):
        udp.sendto(b"x", ("192.0.2.1", 53))
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("example.com", 443)  # a DNS query would leave the machine
    assert len(netguard.take_refusals()) == len(OUTSIDE) + 3  # recorded: the test would fail
    # Names reserved never to exist fail to resolve, as anywhere, with no query and no blame;
    # numeric forms need no query at all.
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("yourapp.example", 443)
    assert socket.getaddrinfo("0x7f.0.0.1", 80)[0][4][0] == "127.0.0.1"
    assert netguard.take_refusals() == []


async def test_asyncio_connections_are_guarded_too() -> None:
    with pytest.raises(netguard.NetworkGuardError):
        await asyncio.open_connection("192.0.2.1", 9)
    with pytest.raises(OSError, match="not resolved in tests"):
        await asyncio.open_connection("example.com", 443)
    assert len(netguard.take_refusals()) == 2


async def test_loopback_and_unix_sockets_still_work() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "s")
        unix = await asyncio.start_unix_server(echo, path)
        for connect in (lambda: asyncio.open_connection("127.0.0.1", port),
                        lambda: asyncio.open_connection("localhost", port),
                        lambda: asyncio.open_unix_connection(path)):
            reader, writer = await connect()
            writer.write(b"ping\n")
            assert await reader.readline() == b"ping\n"
            writer.close()
        unix.close()
    server.close()
    assert netguard.take_refusals() == []


def test_python_subprocesses_are_guarded() -> None:
    code = "import socket; socket.create_connection(('192.0.2.1', 9), timeout=1)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ), check=False)
    assert run.returncode != 0
    assert "NetworkGuardError" in run.stderr and "tests stay on loopback" in run.stderr
    [refusal] = netguard.take_refusals()  # written down by the subprocess for this test
    assert "192.0.2.1" in refusal and f"pid {os.getpid()}" not in refusal
