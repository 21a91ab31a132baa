"""Every socket's keepalive on one timer of the loop.

A timer per socket cost each idle phone a TimerHandle and uvloop's and libuv's timers
(about 470 bytes, docs/performance.md) and each login the arming of one. Here a socket is
an entry in the slot of the tick its next ping is due in: one timer for the whole hub,
pings late by at most one tick (a tenth of the heartbeat, at most a second).
"""

from __future__ import annotations

import asyncio
import heapq
import math
from typing import Protocol


class Pinged(Protocol):
    """What the keepalive keeps: told when its ping is due, answering whether to go on."""

    keepalive_slot: int

    def keepalive_due(self) -> bool: ...


class Keepalive:
    """Calls `keepalive_due()` of each member every `interval` seconds after it was added,
    for as long as that answers True and it is not discarded."""

    __slots__ = ("_keys", "_slots", "_step", "_tick", "_timer", "interval")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._tick = min(1.0, interval / 10)
        self._step = math.ceil(interval / self._tick - 1e-9)  # ticks from one ping to the next
        self._slots: dict[int, dict[Pinged, None]] = {}  # tick number -> members due in it
        self._keys: list[int] = []  # the slots' tick numbers, a heap
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return sum(len(members) for members in self._slots.values())

    def add(self, member: Pinged) -> None:
        """Due `interval` seconds from now."""
        loop = asyncio.get_running_loop()
        self._place(member, math.ceil((loop.time() + self.interval) / self._tick), loop)

    def _place(self, member: Pinged, slot: int, loop: asyncio.AbstractEventLoop) -> None:
        members = self._slots.get(slot)
        if members is None:
            members = self._slots[slot] = {}
            heapq.heappush(self._keys, slot)
            if self._keys[0] == slot:
                self._arm(loop)
        members[member] = None
        member.keepalive_slot = slot

    def discard(self, member: Pinged) -> None:
        members = self._slots.get(member.keepalive_slot)
        if members is not None:
            members.pop(member, None)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._slots.clear()
        self._keys.clear()

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(self._keys[0] * self._tick, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        # Half a tick of slack: the timer fired at the slot's time, give or take rounding.
        limit = loop.time() + self._tick / 2
        due: list[tuple[int, dict[Pinged, None]]] = []
        while self._keys and self._keys[0] * self._tick <= limit:
            slot = heapq.heappop(self._keys)
            due.append((slot, self._slots.pop(slot)))
        # The next time counts from the slot, not from now: a late tick does not add up.
        # At least ten ticks on, so never into a slot taken above.
        for slot, members in due:
            for member in members:
                if member.keepalive_due():
                    self._place(member, slot + self._step, loop)
        if self._keys and self._timer is None:
            self._arm(loop)
