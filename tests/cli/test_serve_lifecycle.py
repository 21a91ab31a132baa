"""`serve` with its embedded PostgreSQL, as real processes and signals: a busy port answered
at once, the database stopped on every way out, an orphaned one adopted, no hang."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.cli.test_cli import cli_env
from tests.cli.test_serve import LISTENING


@dataclass
class Hub:
    proc: asyncio.subprocess.Process
    pgdata: Path
    err: bytes = b""

    async def listening(self) -> str:
        assert self.proc.stdout is not None
        while True:  # log lines may come first
            line = (await asyncio.wait_for(self.proc.stdout.readline(), 90)).decode()
            assert line, await self.stderr()
            if LISTENING.search(line):
                return line

    async def stderr(self) -> str:
        assert self.proc.stderr is not None
        with contextlib.suppress(TimeoutError):
            self.err += await asyncio.wait_for(self.proc.stderr.read(), 30)
        return self.err.decode()

    async def exit_code(self, timeout: float = 30) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)


def postgres(pgdata: Path) -> psutil.Process | None:
    """The live postgres of `pgdata`, from its postmaster.pid."""
    try:
        proc = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
        return proc if proc.name() == "postgres" and proc.is_running() else None
    except (FileNotFoundError, ValueError, IndexError, psutil.Error):
        return None


async def stopped(pgdata: Path, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while postgres(pgdata) is not None:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[object]:
    """`await start(port=0)`: `serve` on 127.0.0.1 with no database configured, so it starts
    its embedded PostgreSQL in tmp_path/var. Whatever a test leaves is ended."""
    hubs: list[Hub] = []

    async def run(port: int = 0, **env: str) -> Hub:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsnodes_hub", "serve", "--host", "127.0.0.1",
            "--port", str(port), cwd=tmp_path,
            env=cli_env(SMSNODES_DATABASE_DATA_DIR=str(tmp_path / "var"),
                        SMSNODES_SERVER_SHUTDOWN_TIMEOUT="2", **env),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        hubs.append(Hub(proc, tmp_path / "var" / "pgdata"))
        return hubs[-1]

    yield run
    for hub in hubs:
        if hub.proc.returncode is None:
            hub.proc.kill()
            await hub.proc.wait()
    leftover = postgres(tmp_path / "var" / "pgdata")
    if leftover is not None:
        leftover.kill()
        raise AssertionError("the test left its embedded PostgreSQL running")


async def test_a_busy_port_is_told_at_once_before_the_database_starts(start, tmp_path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        began = time.monotonic()
        hub = await start(port)
        code = await hub.exit_code()
        took = time.monotonic() - began
    assert code == 2
    err = await hub.stderr()
    assert err.strip() == f"smsnodes-hub: port {port} is in use (is another hub running?)", err
    assert took < 10, took  # about 1 s on a quiet machine: the Python start
    assert not (tmp_path / "var").exists()  # no database was started for nothing


async def test_sigterm_stops_the_hub_and_its_database(start) -> None:
    hub = await start()
    await hub.listening()
    assert postgres(hub.pgdata) is not None
    hub.proc.send_signal(signal.SIGTERM)
    assert await hub.exit_code() == 0
    assert await stopped(hub.pgdata)


async def test_a_second_signal_still_stops_the_database(start) -> None:
    hub = await start()
    await hub.listening()
    hub.proc.send_signal(signal.SIGINT)
    await asyncio.sleep(0.05)
    hub.proc.send_signal(signal.SIGINT)
    await hub.exit_code(20)
    assert await stopped(hub.pgdata)


async def test_a_signal_while_the_database_starts_stops_it(start) -> None:
    hub = await start()
    deadline = time.monotonic() + 60
    while not (hub.pgdata / "PG_VERSION").exists():  # initdb under way or done
        assert time.monotonic() < deadline and hub.proc.returncode is None
        await asyncio.sleep(0.02)
    hub.proc.send_signal(signal.SIGTERM)
    code = await hub.exit_code(60)
    assert code in (0, 128 + signal.SIGTERM), await hub.stderr()
    assert "Traceback" not in await hub.stderr()
    assert await stopped(hub.pgdata)


async def test_an_error_after_the_database_started_stops_it(start) -> None:
    # More pooled connections than the embedded server's max_connections (100).
    hub = await start(SMSNODES_DATABASE_POOL_MIN="150", SMSNODES_DATABASE_POOL_MAX="150")
    code = await hub.exit_code(90)
    assert code == 1
    assert "too many clients" in await hub.stderr()
    assert (hub.pgdata / "PG_VERSION").exists()  # it did start
    assert await stopped(hub.pgdata)


async def test_an_orphan_of_a_killed_hub_is_adopted_and_then_stopped(start) -> None:
    first = await start()
    await first.listening()
    first.proc.kill()  # kill -9: nothing of the hub's own runs
    await first.exit_code()
    orphan = postgres(first.pgdata)
    assert orphan is not None  # what the hub could not stop

    second = await start()
    await second.listening()
    second.proc.send_signal(signal.SIGINT)
    assert await second.exit_code() == 0
    assert f"found the embedded PostgreSQL (pid {orphan.pid})" in await second.stderr()
    assert "left running by a hub that did not stop" in second.err.decode()
    assert await stopped(second.pgdata)


def test_the_database_of_the_cli_is_stopped_after_each_command(tmp_path: Path) -> None:
    """The CLI's commands use the same embedded server and stop it when they are done."""
    import subprocess

    env = cli_env(SMSNODES_DATABASE_DATA_DIR=str(tmp_path / "var"))
    run = subprocess.run([sys.executable, "-m", "smsnodes_hub", "device", "list"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert postgres(tmp_path / "var" / "pgdata") is None
    assert os.path.exists(tmp_path / "var" / "pgdata" / "PG_VERSION")
