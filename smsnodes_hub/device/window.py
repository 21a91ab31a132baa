"""The window of one connection: the `sms` frames in flight, the claims that fill its free
slots from the queue (paced), the withdrawals, and the resend of frames not acked in time.
It writes only through the connection's SocketWriter."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass

import asyncpg

from smsnodes_hub.auth.accounts import Principal
from smsnodes_hub.device import sessions
from smsnodes_hub.device.pacing import Pacer
from smsnodes_hub.device.protocol import sms_frame
from smsnodes_hub.device.writer import Cancel, SocketWriter, Text
from smsnodes_hub.messaging import messages
from smsnodes_hub.messaging.lanes import Lanes

log = logging.getLogger(__name__)

CLAIM_RETRY = 1.0  # seconds before claiming again after the database failed us
RECENT = 256  # pushed ids remembered for sentImmediately


@dataclass(slots=True)
class InFlight:
    attempt: int
    frame: bytes
    deadline: float


def frame_from_row(row: asyncpg.Record, principal: Principal) -> bytes:
    """The `sms` frame of a claimed row, its numbers and text decrypted."""
    open_ = principal.open
    return sms_frame(
        row["id"],
        row["attempt"],
        [open_(n, messages.NUMBER_PURPOSE) for n in row["numbers"]],
        open_(row["body"], messages.TEXT_PURPOSE),
        row["priority"],
        row["created_at"],
        row["expires_at"],
        row["sim"],
    )


class Window:
    """At most `size` frames un-acked; free slots are filled by claims from the queue."""

    __slots__ = (
        "_cancels_written",
        "_early_cancels",
        "_flush_task",
        "_pump_lock",
        "_pump_task",
        "_queue_may_hold_work",
        "_ready",
        "_recent",
        "_room_published",
        "_room_task",
        "_room_timer",
        "_work_seq",
        "ack_timeout",
        "claims",
        "connection_id",
        "in_flight",
        "lanes",
        "pacer",
        "pool",
        "principal",
        "reserved",
        "size",
        "writer",
    )

    def __init__(
        self,
        writer: SocketWriter,
        principal: Principal,
        pool: asyncpg.Pool,
        lanes: Lanes,
        connection_id: uuid.UUID,
        *,
        size: int,
        ack_timeout: float,
        pacer: Pacer,
    ) -> None:
        self.writer = writer
        self.principal = principal
        self.pool = pool
        self.lanes = lanes
        self.connection_id = connection_id
        self.size = size
        self.ack_timeout = ack_timeout
        self.pacer = pacer
        self.in_flight: dict[int, InFlight] = {}
        self.reserved = 0  # slots promised to send requests whose insert is under way
        self.claims = 0  # claim round trips made, for metrics and tests
        # Until auth_ok is queued nothing else may be: no sms, no cancel (see set_ready).
        self._ready = False
        self._early_cancels: list[int] = []
        self._pump_task: asyncio.Task[None] | None = None
        self._pump_lock = asyncio.Lock()
        self._queue_may_hold_work = True  # until a claim comes back short
        # Bumped by every hint of new work: a claim that started before the hint may not
        # see that work, so its short answer must not clear the flag the hint set.
        self._work_seq = 0
        # Ids pushed lately (sentImmediately); made at the first push: most phones are idle.
        self._recent: deque[int] | None = None
        self._cancels_written: list[int] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._room_timer: asyncio.TimerHandle | None = None
        self._room_published = 0.0  # monotonic time until which routing knows it is full
        self._room_task: asyncio.Task[None] | None = None

    @property
    def device_id(self) -> int:
        return self.principal.phone_id

    @property
    def ready(self) -> bool:
        """auth_ok is queued: frames may follow it."""
        return self._ready and self.writer.open

    def set_ready(self, withdrawn: list[int]) -> None:
        """auth_ok is queued: tell the phone what was withdrawn, then start pushing."""
        self._ready = True
        for message_id in dict.fromkeys([*withdrawn, *self._early_cancels]):
            self.withdraw(message_id)
        self._early_cancels.clear()
        self.note_new_work()

    def stop(self) -> None:
        """The writer has ended: no timer may wake the pump any more."""
        if self._room_timer is not None:
            self._room_timer.cancel()

    def free_slots(self) -> int:
        return self.size - len(self.in_flight) - self.reserved

    @property
    def idle_with_room(self) -> bool:
        """Ready, with free slots, and believing nothing waits in its queue."""
        return self.ready and not self._queue_may_hold_work and self.free_slots() > 0

    def can_push_directly(self) -> bool:
        """A new message may skip the queue only if nothing can be waiting ahead of it, and
        never on a paced phone: only a claim counts SMS against the minute."""
        return (
            self.ready
            and not self.pacer.per_minute
            and not self._queue_may_hold_work
            and not self._pump_lock.locked()
            and self.free_slots() > 0
        )

    def push(self, message_id: int, attempt: int, frame: bytes) -> None:
        self.in_flight[message_id] = InFlight(attempt, frame, time.monotonic() + self.ack_timeout)
        if self._recent is None:
            self._recent = deque(maxlen=RECENT)
        self._recent.append(message_id)
        self.writer.send(Text(frame))

    def was_pushed(self, message_id: int) -> bool:
        return message_id in self.in_flight or (
            self._recent is not None and message_id in self._recent)

    def settle(self, message_id: int) -> None:
        """The phone acked (or reported on) the message: its slot is free."""
        if self.in_flight.pop(message_id, None) is not None and self._queue_may_hold_work:
            self.wake()

    def settle_attempt(self, message_id: int, attempt: int) -> None:
        """The phone acked this attempt: free its slot now, before the ack is committed. If
        that commit fails the socket closes and the message is requeued; the phone ignores
        the repeat of an (id, attempt) it holds."""
        held = self.in_flight.get(message_id)
        if held is not None and held.attempt == attempt:
            self.settle(message_id)

    def expect_work(self) -> None:
        self._queue_may_hold_work = True
        self._work_seq += 1

    def note_new_work(self) -> None:
        self.expect_work()
        self.wake()

    def wake(self) -> None:
        if not self.ready or self.free_slots() <= 0:
            return
        if self._pump_task is None or self._pump_task.done():
            self._pump_task = asyncio.create_task(self.pump())
            # Not kept once done: a finished task per idle phone is memory for nothing.
            self._pump_task.add_done_callback(self._pumped)

    def _pumped(self, task: asyncio.Task[None]) -> None:
        if self._pump_task is task:
            self._pump_task = None

    async def pump(self) -> None:
        """Claim waiting messages into the free slots, highest priority first."""
        async with self._pump_lock:
            while self.ready and self._queue_may_hold_work:
                free = self.free_slots()
                if free <= 0:
                    return
                allowance = self.pacer.allowance()
                if allowance == 0:
                    self._note_full()
                    self._wake_when_paced()
                    return
                seen = self._work_seq
                try:
                    self.claims += 1
                    # Claims of all phones share commits, apart from sends and reports.
                    rows = await self.lanes.claims.submit(messages.Claim(
                        self.device_id, self.connection_id, free, allowance,
                        self.principal.account_id))
                except Exception as exc:
                    # Try again shortly: nothing else may wake us (no new send, no ack).
                    log.warning("could not claim messages for device %s: %s",
                                self.device_id, exc)
                    self._wake_later(CLAIM_RETRY)
                    return
                if allowance is not None:
                    if not rows:
                        # Either nothing waits (stop: a send or an ack wakes us) or the
                        # head waits for room in the minute (try when the oldest SMS of
                        # the minute leaves it). An empty log means the former.
                        if seen != self._work_seq:
                            continue  # work arrived during the claim: look again
                        if not self.pacer.busy():
                            self._queue_may_hold_work = False
                        else:
                            self._wake_when_paced()
                        return
                elif len(rows) < free:
                    self._queue_may_hold_work = seen != self._work_seq
                for row in rows:
                    await self._push_row(row)
                if rows and allowance is not None:
                    self._note_full()

    async def _push_row(self, row: asyncpg.Record) -> None:
        try:
            frame = frame_from_row(row, self.principal)
        except Exception:
            # One damaged row must not strand the rest of the batch as dispatched.
            log.exception("message %s of device %s does not decrypt; marking it failed",
                          row["id"], self.device_id)
            try:
                await messages.fail_unreadable(self.pool, row["id"], self.device_id)
            except Exception as exc:
                # Left dispatched without an in-flight entry: the hub's sweep requeues it.
                log.warning("could not mark message %s failed: %s", row["id"], exc)
            return
        self.pacer.record(len(row["numbers"]))
        self.push(row["id"], row["attempt"], frame)

    def _note_full(self) -> None:
        """A paced phone whose minute is full: routing passes it over until the minute has
        room (device_sessions.room_at), told once per filling, in the background."""
        if self.pacer.allowance() != 0:
            return
        seconds = self.pacer.seconds_until_room()
        until = time.monotonic() + seconds
        if until <= self._room_published + 0.5 or (self._room_task and not self._room_task.done()):
            return
        self._room_published = until
        self._room_task = asyncio.create_task(self._publish_room(seconds))

    async def _publish_room(self, seconds: float) -> None:
        try:
            await sessions.set_room(self.pool, self.device_id, self.connection_id, seconds)
        except Exception as exc:  # only routing's choice suffers: it may pick this phone
            log.warning("could not record the pacing of device %s: %s", self.device_id, exc)

    def _wake_when_paced(self) -> None:
        self._wake_later(self.pacer.seconds_until_room())

    def _wake_later(self, delay: float) -> None:
        """Wake in `delay` seconds, unless a wake already pending comes sooner: a claim's
        retry must not wait for the end of the minute (an early wake that finds no room
        sets the pacing timer again)."""
        loop = asyncio.get_running_loop()
        timer, now = self._room_timer, loop.time()
        if timer is not None and now < timer.when() <= now + delay:
            return
        if timer is not None:
            timer.cancel()
        self._room_timer = loop.call_later(delay, self.wake)

    def withdraw(self, message_id: int) -> None:
        """The message was cancelled or expired: tell the phone, free its slot. Its pending
        flag is cleared once the cancel is written; until then every login repeats it."""
        self.in_flight.pop(message_id, None)
        if not self._ready:
            self._early_cancels.append(message_id)
            return
        self.writer.send(Cancel(message_id))
        if self._queue_may_hold_work:
            self.wake()

    def cancel_written(self, message_id: int) -> None:
        """The cancel is on the wire: the phone need not be told again at its next login."""
        self._cancels_written.append(message_id)
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self._flush_cancels())

    async def _flush_cancels(self) -> None:
        while self._cancels_written:
            ids, self._cancels_written = self._cancels_written, []
            try:
                await messages.withdrawn(self.pool, self.device_id, ids)
            except Exception as exc:
                # Harmless: the flag stays, and the phone hears the cancel again at login.
                log.warning("could not record cancels for device %s: %s", self.device_id, exc)
                return

    def in_flight_ids(self) -> list[int]:
        return list(self.in_flight)

    def resend_overdue(self, now: float) -> None:
        """Frames not acked within the ack timeout go again, same id and attempt."""
        for entry in self.in_flight.values():
            if entry.deadline <= now:
                entry.deadline = now + self.ack_timeout
                self.writer.send(Text(entry.frame))
