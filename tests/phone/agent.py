"""Running `python -m smsnodes_phone` as a real process, and reading the hub over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

from tests.phone.fakes import FakeRadio
from tests.support import PASSWORD, ROOT, basic, get, send, until, ws_url

FAST = ["--poll-interval", "0.2", "--backoff-initial", "0.2", "--backoff-max", "0.5",
        "--telemetry-interval", "30"]


AGENT = [sys.executable, "-m", "smsnodes_phone"]


class Agent:
    def __init__(self, url: str, username: str, radio: str, state_dir: Path,
                 env: dict[str, str], log: Path, *extra: str,
                 launcher: list[str] = AGENT, cwd: Path = ROOT) -> None:
        self.argv = [*launcher, "--url", url,
                     "--username", username, "--radio", radio, "--state-dir", str(state_dir),
                     "--password-stdin", *FAST, *extra]
        self.env = env
        self.log = log
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, password: str = PASSWORD) -> Agent:
        with self.log.open("a") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, cwd=self.cwd, env=self.env, stdin=asyncio.subprocess.PIPE,
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


def agent_for(hub: Any, fake: FakeRadio, tmp_path: Path, radio: str, *extra: str,
              name: str = "phone-1") -> Agent:
    """An agent for account ``name`` of ``hub``, with the fake tools on its PATH."""
    return Agent(ws_url(hub), name, radio, tmp_path / "state", fake.env(),
                 tmp_path / "agent.log", *extra)


async def send_to(client: Any, username: str, numbers: list[str], text: str) -> int:
    return int((await send(client, username, numbers=numbers, text=text))["messageId"])


async def wait_statuses(client: Any, username: str, msg_id: int, want: dict[str, str],
                        timeout: float = 15.0) -> dict[str, Any]:
    """Poll GET /api/messages/{id} until each recipient has the wanted status."""

    seen: list[dict[str, Any]] = []

    async def reached() -> dict[str, Any] | None:
        body = await get(client, f"/api/messages/{msg_id}", basic(username))
        seen[:] = [body]
        return body if {r["to"]: r["status"] for r in body["recipients"]} == want else None

    try:
        return await until(reached, timeout)
    except AssertionError:
        raise AssertionError(f"message {msg_id}: statuses never became {want}; the hub "
                             f"last said {seen[0] if seen else None}") from None


async def inbound(client: Any, username: str) -> list[dict[str, Any]]:
    return list((await get(client, "/api/inbound?per_page=100", basic(username)))["data"])


@contextlib.asynccontextmanager
async def running(agent: Agent, password: str = PASSWORD) -> Any:
    await agent.start(password)
    try:
        yield agent
    finally:
        if agent.proc is not None and agent.proc.returncode is None:
            await agent.stop()
