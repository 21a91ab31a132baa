"""Running `python -m smsnodes_hub.phone` as a real process, and reading the hub over HTTP."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..conftest import PASSWORD, ROOT

FAST = ["--poll-interval", "0.2", "--backoff-initial", "0.2", "--backoff-max", "0.5",
        "--telemetry-interval", "30"]


class Agent:
    def __init__(self, url: str, username: str, radio: str, state_dir: Path,
                 env: dict[str, str], log: Path, *extra: str) -> None:
        self.argv = [sys.executable, "-m", "smsnodes_hub.phone", "--url", url,
                     "--username", username, "--radio", radio, "--state-dir", str(state_dir),
                     "--password-stdin", *FAST, *extra]
        self.env = env
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, password: str = PASSWORD) -> Agent:
        with self.log.open("a") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, cwd=ROOT, env=self.env, stdin=asyncio.subprocess.PIPE,
                stdout=out, stderr=out)
        assert self.proc.stdin is not None
        self.proc.stdin.write(password.encode() + b"\n")
        await self.proc.stdin.drain()
        self.proc.stdin.close()
        return self

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    async def wait_log(self, text: str, timeout: float = 10.0) -> None:
        await until(lambda: text in self.output(), timeout, f"agent log never said {text!r}:\n"
                    + self.output())

    async def stop(self) -> int:
        proc = self.proc
        assert proc is not None
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError("the agent did not stop on SIGTERM:\n" + self.output()) from None

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def until(predicate: Callable[[], bool], timeout: float, why: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(why or "condition not met")
        await asyncio.sleep(0.05)


def basic(username: str) -> dict[str, str]:
    secret = base64.b64encode(f"{username}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {secret}"}


async def send(client: Any, username: str, numbers: list[str], text: str) -> int:
    resp = await client.post("/api/send-sms", json={
        "deviceUsername": username, "password": PASSWORD,
        "phoneNumbers": numbers, "message": text})
    body = await resp.json()
    assert resp.status == 200, body
    return int(body["messageId"])


async def message(client: Any, username: str, msg_id: int) -> dict[str, Any]:
    resp = await client.get(f"/api/messages/{msg_id}", headers=basic(username))
    assert resp.status == 200
    return dict(await resp.json())


async def wait_statuses(client: Any, username: str, msg_id: int, want: dict[str, str],
                        timeout: float = 15.0) -> dict[str, Any]:
    """Poll GET /api/messages/{id} until each recipient has the wanted status."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        body = await message(client, username, msg_id)
        got = {r["to"]: r["status"] for r in body["recipients"]}
        if got == want:
            return body
        if loop.time() > deadline:
            raise AssertionError(f"message {msg_id}: {got} != {want}")
        await asyncio.sleep(0.1)


async def inbound(client: Any, username: str) -> list[dict[str, Any]]:
    resp = await client.get("/api/inbound?per_page=100", headers=basic(username))
    assert resp.status == 200
    return list((await resp.json())["data"])


@contextlib.asynccontextmanager
async def running(agent: Agent, password: str = PASSWORD) -> Any:
    await agent.start(password)
    try:
        yield agent
    finally:
        if agent.proc is not None and agent.proc.returncode is None:
            await agent.stop()
