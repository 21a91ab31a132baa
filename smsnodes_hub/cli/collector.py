"""The garbage collector's settings for a serving hub, which holds thousands of phones.

Each phone's connection is a few hundred long-lived objects. With CPython's default
thresholds a full collection, which walks every object, ran each time another quarter of
them had arrived: a reconnect storm of 5,000 phones spent 40 % of the hub's CPU in the
collector (docs/performance.md). Young collections that wait for more allocations, and
what existed at start-up moved out of the collector's sight, keep the storm's cost in
the hub's own work. Connections free themselves by reference counting (a test holds
them to that), so collecting less often leaves no more garbage behind.
"""

from __future__ import annotations

import gc

# A young collection after this many new container objects (CPython's default: 700),
# then the middle one every 10 of those and a full one every 10 of these, as by default.
YOUNG = 10_000
MIDDLE = 10
FULL = 10


def tune() -> None:
    """Call once the hub has started: modules, settings and the app are there for good."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, FULL)
