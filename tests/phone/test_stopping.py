"""Stopping the agent: it stops when told to, even as a radio tool finishes, and a stop
in the middle of a message loses nothing and sends nothing twice."""

from __future__ import annotations

import asyncio
import sys

import pytest

from smsnodes_phone.gateway import INTERRUPTED
from smsnodes_phone.radio.proc import run_tool
from tests.phone.agent import agent_for, running, send_to, wait_statuses
from tests.support import add_device

A, B, C = "+15550001111", "+15550002222", "+15550003333"


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


async def test_a_stop_mid_send_resumes_the_rest_and_reports_the_interrupted_one(
        hub, fake, tmp_path):
    await add_device(hub, "phone-1")
    fake.control(slow={B: 30})  # B is with the radio when the agent is told to stop
    agent = agent_for(hub, fake, tmp_path, "termux")
    async with running(agent):
        await agent.wait_log("connected")
        msg_id = await send_to(hub, "phone-1", [A, B, C], "three of them")
        await wait_statuses(hub, "phone-1", msg_id, {A: "sent", B: "accepted", C: "accepted"})
        await asyncio.sleep(0.5)  # termux-sms-send -n B is running
    assert agent.proc is not None and agent.proc.returncode == 0
    fake.control()
    async with running(agent):  # the same state directory: a restart
        body = await wait_statuses(hub, "phone-1", msg_id,
                                   {A: "sent", B: "failed", C: "sent"})
    [b] = [r for r in body["recipients"] if r["to"] == B]
    assert b["error"] == INTERRUPTED  # it may have gone out: not sent again, not retried
    assert [s["number"] for s in fake.sent()] == [A, C]
