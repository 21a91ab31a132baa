"""Pacing: at most N SMS per minute from one phone, because carriers block SIMs that send
too fast. The hub holds messages back in the queue rather than push faster."""

from __future__ import annotations

import time
from collections import deque

WINDOW = 60.0


class Pacer:
    """A sliding one-minute log of SMS handed to a phone. Kept per device by the hub, so a
    reconnect to the same process does not reset it."""

    __slots__ = ("_log", "per_minute")

    def __init__(self, per_minute: int | None = None) -> None:
        self.per_minute = per_minute
        # Made at the first SMS recorded: an unpaced phone (most) never needs one.
        self._log: deque[tuple[float, int]] | None = None

    def _prune(self, now: float) -> int:
        log = self._log
        if log is None:
            return 0
        while log and log[0][0] <= now - WINDOW:
            log.popleft()
        return sum(count for _, count in log)

    def allowance(self, now: float | None = None) -> int | None:
        """SMS that may go now; None when pacing is off."""
        if not self.per_minute:
            return None
        used = self._prune(time.monotonic() if now is None else now)
        if used == 0:
            # A message with more recipients than the limit must still go, alone.
            return 2**31 - 1
        return max(0, self.per_minute - used)

    def record(self, count: int, now: float | None = None) -> None:
        if self.per_minute:
            if self._log is None:
                self._log = deque()
            self._log.append((time.monotonic() if now is None else now, count))

    def busy(self, now: float | None = None) -> bool:
        """Some SMS of the last minute still count against the limit."""
        if not self.per_minute:
            return False
        self._prune(time.monotonic() if now is None else now)
        return bool(self._log)

    def seconds_until_room(self, now: float | None = None) -> float:
        """When the oldest SMS of the minute leaves it; never 0, so a timer armed with it
        cannot turn into a busy loop (with an empty log there is nothing to wait for)."""
        now = time.monotonic() if now is None else now
        self._prune(now)
        if not self._log:
            return WINDOW
        return max(0.01, self._log[0][0] + WINDOW - now)

    def idle(self, now: float | None = None) -> bool:
        """Nothing of the last minute to remember: the pacer may be forgotten."""
        self._prune(time.monotonic() if now is None else now)
        return not self._log
