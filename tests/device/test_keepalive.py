"""The hub's one keepalive timer for every socket (smsnodes_hub/device/keepalive.py)."""

from __future__ import annotations

import asyncio

from smsnodes_hub.device.keepalive import Keepalive


class Member:
    def __init__(self, rounds: int) -> None:
        self.keepalive_slot = 0
        self.rounds = rounds
        self.due_at: list[float] = []

    def keepalive_due(self) -> bool:
        self.due_at.append(asyncio.get_running_loop().time())
        return len(self.due_at) < self.rounds


async def test_members_are_due_every_interval_until_they_answer_no_or_leave() -> None:
    keepalive = Keepalive(0.2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    stays, ends, leaves = Member(rounds=100), Member(rounds=2), Member(rounds=100)
    keepalive.add(stays)
    await asyncio.sleep(0.05)
    keepalive.add(ends)
    keepalive.add(leaves)
    await asyncio.sleep(0.3)
    keepalive.discard(leaves)
    await asyncio.sleep(0.6)
    keepalive.stop()
    assert len(stays.due_at) == 4, stays.due_at
    for i, at in enumerate(stays.due_at, 1):
        # An interval apart, late by at most a tick (a tenth of it) and the loop's jitter.
        assert start + i * 0.2 - 0.005 <= at <= start + i * 0.2 + 0.02 + 0.05
    assert len(ends.due_at) == 2  # it answered False the second time: never again
    assert len(leaves.due_at) == 1  # due once, then discarded
    assert len(keepalive) == 0


async def test_a_member_added_before_the_armed_slot_moves_the_timer_earlier() -> None:
    keepalive = Keepalive(1.0)
    late = Member(rounds=1)
    keepalive.add(late)
    short = Keepalive(0.1)
    early = Member(rounds=1)
    short.add(early)
    await asyncio.sleep(0.25)
    assert len(early.due_at) == 1 and late.due_at == []
    keepalive.stop()
    short.stop()


async def test_many_members_in_one_slot_are_all_due() -> None:
    keepalive = Keepalive(0.1)
    members = [Member(rounds=1) for _ in range(1000)]
    for member in members:
        keepalive.add(member)
    await asyncio.sleep(0.25)
    assert all(len(m.due_at) == 1 for m in members)
    assert len(keepalive) == 0
    keepalive.stop()
