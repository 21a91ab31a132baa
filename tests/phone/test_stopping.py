"""Stopping the agent: it stops when told to, even as a radio tool finishes."""

from __future__ import annotations

import asyncio
import sys

import pytest

from smsnodes_phone.radio.proc import run_tool


async def test_a_cancel_that_comes_as_the_tool_finishes_is_not_lost(monkeypatch):
    # SIGTERM cancels the agent's tasks; one that is waiting for a tool right then must end.
    # (Python 3.11's asyncio.wait_for returned the tool's answer instead and the poller
    # went on polling, so the agent never stopped.)
    communicate = asyncio.subprocess.Process.communicate
    caller: list[asyncio.Task[object]] = []

    async def finishes_as_cancelled(self: asyncio.subprocess.Process,
                                    data: bytes | None = None) -> tuple[bytes, bytes]:
        answer = await communicate(self, data)
        caller[0].cancel()  # the stop order, just as the answer is there
        return answer

    monkeypatch.setattr(asyncio.subprocess.Process, "communicate", finishes_as_cancelled)
    task = asyncio.ensure_future(run_tool([sys.executable, "-c", "print('hi')"], timeout=30))
    caller.append(task)
    with pytest.raises(asyncio.CancelledError):
        await task

