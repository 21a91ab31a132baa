"""The gateway agent: a PhoneSession whose sms frames really go out through a radio.

- An sms frame is stored in the state file, then acked; a repeated (id, attempt) is acked
  again and never sent twice. One worker sends the stored SMS one recipient at a time, in
  the order they came (the hub's priority order), and resumes them after a restart; the
  recipient the radio had when the agent stopped is reported failed, not sent again.
- Nothing starts after ``expiresAt`` or after a ``cancel`` for its id (the hub ends such a
  recipient itself, so none is reported).
- Each recipient gets ``sent`` or ``failed`` (a transient result name the hub retries, or
  the radio's own error text: see results.py), and ``delivered`` when the radio learns of
  a delivery receipt. Reports wait in the outbox, kept in the state file too, until the
  hub answers ``ok``.
- Received SMS are polled and forwarded, each with a ``ref`` of its own; the high-water
  mark only passes an SMS once the hub has stored it.
- Battery and signal go out as a ``heartbeat`` frame after each connect and periodically.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .frames import Frame, inbound_frame, parse_time, sms_fingerprint, sms_key, status_frame
from .outbox import Outbox
from .radio.base import InboundSms, Radio, RadioError, SendResult
from .session import PhoneSession
from .state import AgentState, write_token

DELIVERY_GIVE_UP = 3 * 24 * 3600.0  # a receipt that has not come in three days never will
INTERRUPTED = "interrupted: the agent stopped while sending; it may or may not have gone out"


class Gateway(PhoneSession):
    def __init__(
        self,
        url: str,
        username: str,
        password: str | None,
        radio: Radio,
        state: AgentState,
        *,
        token_path: Path | None = None,
        telemetry_interval: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            url, username, password, outbox=Outbox(state.outbox), record=False, **kwargs
        )
        self._outbox.on_change = self._outbox_changed
        self.radio = radio
        radio.on_note = lambda text: self._event(f"radio: {text}")
        self.state = state
        self.token_path = token_path
        self.telemetry_interval = telemetry_interval
        # (id, attempt) -> the frame's fingerprint; None for keys saved before there was one.
        self._seen: dict[tuple[int, int], str | None] = {
            (k[0], k[1]): (k[2] if len(k) > 2 else None) for k in state.seen}
        self._queue: deque[dict[str, Any]] = deque(state.jobs)
        self._work = asyncio.Event()
        self._work.set()
        self._live_event = asyncio.Event()
        self.sent_count = 0

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await super().start()
        self._spawn(self._sender())
        self._spawn(self._poller())
        self._spawn(self._telemetry())

    # ---- session hooks ------------------------------------------------------------------

    def _on_auth_ok(self, auth_ok: Frame) -> None:
        if self.token_path is not None and self.token:
            write_token(self.token_path, self.token)

    def _on_token_refused(self) -> None:
        self._event("the hub refused the saved token; logging in with the password")

    def _on_live(self) -> None:
        self._live_event.set()

    def _on_sms(self, frame: Frame, seq: int) -> None:
        key = sms_key(frame)
        if key is None:
            self._event(f"ignored malformed sms frame id={frame.get('id')!r}")
            return
        msg_id, attempt = key
        fingerprint = sms_fingerprint(frame)
        known = key in self._seen
        if known and self._seen[key] not in (None, fingerprint):
            # Not a repeat: another message under a used pair (the hub's database was
            # replaced, or this state belongs to another hub). Dropping it would lose it.
            self._event(f"sms id={msg_id} attempt={attempt} differs from the one this phone "
                        f"had under that id: a new message (was the hub's database reset?)")
            known = False
        if not known:
            # Stored durably first: the ack promises the hub that this phone has it.
            job = {"frame": frame, "done": [], "cancelled": False}
            self._seen[key] = fingerprint
            self.state.seen.append([msg_id, attempt, fingerprint])
            self.state.jobs.append(job)
            self.state.save()
            self._queue.append(job)
            self._work.set()
            self._event(f"sms id={msg_id} attempt={attempt} to={len(frame['to'])}")
        else:
            self._event(f"sms id={msg_id} attempt={attempt} again: acked, not sent twice")
        self._spawn(self._ack(msg_id, attempt))

    async def _ack(self, msg_id: int, attempt: int) -> None:
        await self.send({"type": "ack", "id": msg_id, "attempt": attempt})

    def _on_cancel(self, msg_id: int, seq: int) -> None:
        touched = False
        for job in self.state.jobs:
            if job["frame"].get("id") == msg_id and not job["cancelled"]:
                job["cancelled"] = True
                touched = True
        if touched:
            self.state.save()
            self._event(f"cancelled id={msg_id}: recipients not yet sent are withdrawn")

    def _on_reply(self, ref: Any, frame: Frame) -> None:
        pending = self.state.inbound_pending.pop(ref, None) if isinstance(ref, str) else None
        if pending is None:
            return
        if frame.get("type") == "error":
            self._event(f"the hub refused inbound {ref}: {frame.get('error')!r}")
        self._confirm_inbound(ref, pending)

    def _outbox_changed(self) -> None:
        self.state.outbox = self._outbox.frames()
        self.state.save()

    # ---- sending ------------------------------------------------------------------------

    async def _sender(self) -> None:
        while True:
            while not self._queue:
                self._work.clear()
                await self._work.wait()
            job = self._queue[0]
            try:
                await self._send_job(job)
            except asyncio.CancelledError:
                raise  # the agent is stopping: the job stays stored, a restart resumes it
            except Exception as exc:  # a bug: drop this job rather than stall all after it
                self._event(f"crashed sending id={job['frame'].get('id')}: {exc!r}")
            self._queue.popleft()
            if job in self.state.jobs:
                self.state.jobs.remove(job)
            self.state.save()

    async def _send_job(self, job: dict[str, Any]) -> None:
        frame = job["frame"]
        msg_id, attempt = sms_key(frame) or (0, 1)
        text = str(frame.get("message", ""))
        sim = frame.get("sim")
        slot = sim if isinstance(sim, int) and not isinstance(sim, bool) and sim >= 1 else None
        expires = parse_time(frame.get("expiresAt"))
        for to in frame["to"]:
            if to in job["done"]:
                continue  # sent before a restart
            if job["cancelled"]:
                self._event(f"id={msg_id} cancelled; not sending to the rest")
                return
            if job.get("sending") == to:
                # The agent stopped while the radio had it: it may have gone out, so it is
                # not sent again (nor retried by the hub: the error is no result name).
                if not self._reported(msg_id, attempt, to):
                    await self._report(msg_id, attempt, str(to), "failed", INTERRUPTED)
                job["done"].append(to)
                self.state.save()
                continue
            if expires is not None and datetime.now(UTC) > expires:
                self._event(f"id={msg_id} attempt={attempt} expired; not sending")
                return  # never start after expiresAt; the hub expires it itself
            job["sending"] = to
            self.state.save()
            try:
                result = await self.radio.send(str(to), text, slot)
            except RadioError as exc:
                result = SendResult(ok=False, error=str(exc))
            if result.ok:
                self.sent_count += 1
                if result.handle:
                    self.state.deliveries[result.handle] = {
                        "id": msg_id, "attempt": attempt, "to": to, "since": time.time()}
                await self._report(msg_id, attempt, str(to), "sent")
            else:
                if result.detail:  # the report carries a result name; the tool's words go here
                    self._event(f"radio: sending to {to} failed: {result.detail}")
                await self._report(msg_id, attempt, str(to), "failed", result.error)
            job["done"].append(to)
            self.state.save()

    def _reported(self, msg_id: int, attempt: int, to: str) -> bool:
        """A report about this recipient waits in the outbox (the stop came after it)."""
        return any(f.get("type") == "status" and f.get("id") == msg_id
                   and f.get("attempt") == attempt and f.get("to") == to for f in self._outbox)

    async def _report(
        self, msg_id: int, attempt: int, to: str, status: str, error: str | None = None
    ) -> None:
        frame = status_frame(str(uuid.uuid4()), msg_id, attempt, to, status, error)
        self._event(
            f"status id={msg_id} attempt={attempt} to={to} {status}"
            + (f" error={error!r}" if error else "")
        )
        await self.send_reliably(frame)

    # ---- polling: inbound SMS and delivery receipts -------------------------------------

    async def _poller(self) -> None:
        first = True
        while True:
            try:
                await self._poll_inbound(first)
                first = False
                await self._poll_deliveries()
            except RadioError as exc:
                self._event(f"radio: {exc}")
            await asyncio.sleep(self.radio.poll_interval)

    async def _poll_inbound(self, first: bool) -> None:
        state = self.state
        found = await self.radio.poll_inbound(state.inbound_mark)
        if first and self.radio.sequential and state.inbound_mark is None:
            # A first start does not replay the phone's whole inbox to the hub.
            seqs = [sms.seq for sms in found if sms.seq is not None]
            state.inbound_mark = state.inbound_confirmed = max(seqs, default=0)
            state.save()
            if seqs:
                self._event(f"{len(seqs)} SMS already in the inbox are not forwarded")
            found = []
        forwarded = set(state.forwarded)
        for sms in found:
            if sms.ref in forwarded or sms.ref in state.inbound_pending:
                continue
            state.inbound_pending[sms.ref] = {"seq": sms.seq, "handle": sms.handle}
            self._event(f"inbound ref={sms.ref} from={sms.sender}")
            # send_reliably saves the state (outbox and pending) in the same step.
            await self.send_reliably(
                inbound_frame(sms.ref, sms.sender, sms.text, sms.received_at))

    def _confirm_inbound(self, ref: str, pending: dict[str, Any]) -> None:
        state = self.state
        state.forwarded.append(ref)
        seq = pending.get("seq")
        if isinstance(seq, int):
            state.inbound_confirmed = max(seq, state.inbound_confirmed or seq)
            waiting = [
                p["seq"] for p in state.inbound_pending.values() if isinstance(p.get("seq"), int)
            ]
            mark = state.inbound_confirmed
            if waiting:
                mark = min(mark, min(waiting) - 1)
            state.inbound_mark = max(mark, state.inbound_mark or mark)
        state.save()
        handle = pending.get("handle")
        if handle:
            sms = InboundSms(ref=ref, sender="", text="", received_at="", handle=handle)
            self._spawn(self._forget(sms))

    async def _forget(self, sms: InboundSms) -> None:
        try:
            await self.radio.forget_inbound(sms)
        except RadioError as exc:
            self._event(f"radio: {exc}")

    async def _poll_deliveries(self) -> None:
        deliveries = self.state.deliveries
        if not deliveries:
            return
        for report in await self.radio.poll_deliveries(list(deliveries)):
            info = deliveries.pop(report.handle, None)
            if info is None:
                continue
            status = "delivered" if report.delivered else "failed"
            # The report is in the outbox (and the state file) before the radio forgets.
            await self._report(info["id"], info["attempt"], info["to"], status, report.error)
            try:
                await self.radio.forget_delivery(report)
            except RadioError as exc:
                self._event(f"radio: {exc}")
        now = time.time()
        for handle, info in list(deliveries.items()):
            if now - float(info.get("since", now)) > DELIVERY_GIVE_UP:
                del deliveries[handle]
        self.state.save()

    # ---- telemetry ----------------------------------------------------------------------

    async def _telemetry(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # not wait_for: see radio/proc.py
                async with asyncio.timeout(self.telemetry_interval):
                    await self._live_event.wait()
            self._live_event.clear()
            try:
                frame = (await self.radio.telemetry()).frame()
            except RadioError as exc:
                self._event(f"radio: {exc}")
                continue
            if frame is not None:
                await self.send(frame)
