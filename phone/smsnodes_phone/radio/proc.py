"""Running the radio's command-line tools: no shell, a timeout, text in and out."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import orjson

from .base import RadioError


@dataclass(frozen=True, slots=True)
class ToolResult:
    code: int
    stdout: str
    stderr: str

    def error_text(self) -> str:
        """What the tool said when it failed: stderr, else stdout, else the exit code."""
        text = self.stderr.strip() or self.stdout.strip()
        return text or f"exit code {self.code}"


async def run_tool(argv: list[str], *, stdin: str | None = None, timeout: float) -> ToolResult:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        raise RadioError(f"{argv[0]} not found on PATH") from exc
    except PermissionError as exc:
        raise RadioError(f"{argv[0]} is not executable: {exc}") from exc
    data = stdin.encode() if stdin is not None else None
    try:
        # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancel that comes
        # as the tool finishes, and an agent told to stop then carries on polling for ever.
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate(data)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return ToolResult(-1, "", f"{argv[0]} gave no answer within {timeout:g} s")
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
    code = proc.returncode if proc.returncode is not None else -1
    return ToolResult(code, out.decode(errors="replace"), err.decode(errors="replace"))


def parse_json(result: ToolResult, what: str) -> Any:
    """The tool's JSON answer; RadioError when it failed or printed something else."""
    if result.code != 0:
        raise RadioError(f"{what} failed: {result.error_text()}")
    try:
        return orjson.loads(result.stdout)
    except orjson.JSONDecodeError as exc:
        raise RadioError(f"{what} printed no JSON: {result.stdout.strip()[:200]!r}") from exc
