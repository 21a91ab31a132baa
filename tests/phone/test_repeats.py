"""A repeated (id, attempt) is acked again and never sent twice: the agent as a real
process with the fake termux tools, against a real hub and against a scripted one."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.phone.agent import Agent, agent_for, running, send_to, wait_statuses
from tests.phone.fakehub import TOKEN, FakeHub
from tests.support import add_device

A = "+15550001111"


@contextlib.asynccontextmanager
async def scripted_hub_and_agent(fake: Any, tmp_path: Path
                                 ) -> AsyncIterator[tuple[FakeHub, Agent]]:
    """A scripted hub on a loopback socket and the agent (termux radio) connected to it."""
    hub = await FakeHub().start()
    try:
        agent = Agent(hub.url, "phone-1", "termux", tmp_path / "state", fake.env(),
                      tmp_path / "agent.log")
        async with running(agent):
            await hub.connected(1)
            yield hub, agent
    finally:
        await hub.close()


def sms(msg_id: int, attempt: int, text: str) -> dict[str, object]:
    return {"type": "sms", "id": msg_id, "attempt": attempt, "to": [A], "message": text,
            "priority": 1, "createdAt": "2026-11-21T10:00:00Z", "expiresAt": None}


async def test_a_frame_pushed_again_on_the_connection_or_after_a_reconnect_is_acked_and_sent_once(
        fake, tmp_path):
    async with scripted_hub_and_agent(fake, tmp_path) as (hub, _agent):
        await hub.push(sms(7, 1, "only once"))
        await hub.wait_for("ack", 1, id=7, attempt=1)
        await hub.wait_for("status", 1, id=7, attempt=1, status="sent")
        await hub.push(sms(7, 1, "only once"))  # as after an ack the hub never saw
        await hub.wait_for("ack", 2, id=7, attempt=1)
        await hub.drop()  # the hub restarts with the frame still "in flight"
        await hub.connected(2)
        await hub.push(sms(7, 1, "only once"))
        await hub.wait_for("ack", 3, id=7, attempt=1)
        await hub.push(sms(7, 2, "only once"))  # a retry is a new key: sent again
        await hub.wait_for("status", 1, id=7, attempt=2, status="sent")
        await asyncio.sleep(0.5)  # nothing more comes
    assert [(s["number"], s["text"]) for s in fake.sent()] == [(A, "only once")] * 2
    # One report per (id, attempt, recipient, status), however often the frame came.
    reports = hub.of_type("status", id=7, attempt=1)
    assert len({r["ref"] for r in reports}) == 1 and reports[0]["status"] == "sent"
    assert hub.auths[1] == {"type": "auth", "token": TOKEN}


async def test_a_used_id_with_other_content_is_a_new_message_and_is_sent(fake, tmp_path):
    # A hub whose database was replaced counts its ids from 1 again, while the phone's state
    # still remembers the old hub's (1, 1): that is another message, not a repeat.
    new = {**sms(1, 1, "from the new hub"), "createdAt": "2026-12-06T10:00:00Z"}
    async with scripted_hub_and_agent(fake, tmp_path) as (hub, agent):
        await hub.push(sms(1, 1, "from the old hub"))
        await hub.wait_for("status", 1, id=1, attempt=1, status="sent")
        await hub.drop()
        await hub.connected(2)
        await hub.push(new)
        await hub.wait_for("ack", 2, id=1, attempt=1)
        await hub.wait_for("status", 2, id=1, attempt=1, status="sent")
        await hub.push(new)
        await hub.wait_for("ack", 3, id=1, attempt=1)  # and that one's repeat is a repeat
        await asyncio.sleep(0.5)
        await agent.wait_log("differs from the one this phone had under that id")
    assert [s["text"] for s in fake.sent()] == ["from the old hub", "from the new hub"]


async def test_the_real_hubs_second_push_of_an_unacked_frame_is_acked_and_not_sent(
        make_hub, fake, tmp_path):
    hub = await make_hub(SMSNODES_DEVICE_ACK_TIMEOUT="0.2")
    await add_device(hub, "phone-1")
    agent = agent_for(hub, fake, tmp_path, "termux")
    async with running(agent):
        await agent.wait_log("connected")
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGSTOP)  # the phone stops reading for a while
        try:
            msg_id = await send_to(hub, "phone-1", [A], "sent once")
            await asyncio.sleep(2.0)  # past the ack timeout: the hub pushes the frame again
        finally:
            agent.proc.send_signal(signal.SIGCONT)
        await wait_statuses(hub, "phone-1", msg_id, {A: "sent"})
        await agent.wait_log(f"sms id={msg_id} attempt=1 again: acked, not sent twice")
        repeats = agent.output().count("again: acked")
        await asyncio.sleep(1.0)  # acked now: the hub pushes it no more
        assert agent.output().count("again: acked") == repeats
    assert [s["text"] for s in fake.sent()] == ["sent once"]
