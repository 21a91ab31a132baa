"""Frames that wait for the hub's ``ok``: status reports and inbound SMS (PROTOCOL.md 5).

A frame stays here, in insertion order, until the hub answers ``ok`` or ``error`` for its
``ref``; every (re)connection sends what is here again. ``on_change`` lets the agent keep a
copy on disk, so a report survives a restart of the agent too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from .frames import Frame


class Outbox:
    def __init__(
        self,
        frames: Iterable[Frame] = (),
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._frames: dict[str, Frame] = {}
        for frame in frames:
            ref = frame.get("ref")
            if isinstance(ref, str):
                self._frames[ref] = frame
        self.on_change = on_change

    def __len__(self) -> int:
        return len(self._frames)

    def __contains__(self, ref: object) -> bool:
        return ref in self._frames

    def __iter__(self) -> Iterator[Frame]:
        return iter(list(self._frames.values()))

    def put(self, frame: Frame) -> None:
        self._frames[frame["ref"]] = frame
        self._changed()

    def pop(self, ref: object) -> Frame | None:
        if not isinstance(ref, str):
            return None
        frame = self._frames.pop(ref, None)
        if frame is not None:
            self._changed()
        return frame

    def frames(self) -> list[Frame]:
        return list(self._frames.values())

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()
