#!/usr/bin/env python3
"""Simulated Android gateway phone(s) speaking the smsnodes-hub device protocol v1.

The wire contract is PROTOCOL.md; this script behaves as a careful phone app would:
password login first, token login on every reconnect, acks keyed by (id, attempt),
per-recipient status reports kept in an outbox until the hub answers ``ok``, and
exponential backoff with full jitter between reconnects.

Try the hub without a phone (prefer --password-stdin: argv is visible to other users)::

    echo 'correct horse' | python scripts/device_sim.py \\
        --url ws://127.0.0.1:3000/ws/device --username shop-phone-1 --password-stdin
    python scripts/device_sim.py --username bench --password pw --count 50 --fail-rate 0.1

From tests or benchmarks::

    sys.path.insert(0, "scripts")
    from device_sim import PhoneBehaviour, SimulatedPhone

    async with SimulatedPhone(url, "shop-phone-1", "pw", PhoneBehaviour(seed=1)) as phone:
        [sms] = await phone.wait_for_sms(1)
        await phone.wait_for(lambda: phone.outbox_size == 0)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import random
import signal
import socket
import sys
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson

__all__ = ["AuthFailed", "PhoneBehaviour", "PhoneError", "SimulatedPhone", "utc_now"]

DEFAULT_URL = "ws://127.0.0.1:3000/ws/device"
PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024  # the hub closes with 1009 above this
INVALID_CREDENTIALS = "Invalid credentials"
TOO_MANY_ATTEMPTS = "Too many attempts"
# 4401 (credentials rejected) and 4409 (replaced by a newer connection): retrying cannot help.
STOP_CODES = frozenset({4401, 4409})
ABNORMAL_CLOSURE = 1006
CONNECT_TIMEOUT = 10.0
AUTH_REPLY_TIMEOUT = 15.0  # the hub itself gives up on a silent client after 10 s
CLOSE_DRAIN_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
DEFAULT_RETRY_AFTER = 60.0
WAIT_POLL = 0.05  # wait_for() re-checks this often so predicates on outside state work too
FAILURE_ERROR = "RESULT_ERROR_GENERIC_FAILURE"

EventSink = Callable[[str], None]
Frame = dict[str, Any]


class PhoneError(Exception):
    """The phone could not connect or authenticate."""


class AuthFailed(PhoneError):
    """The hub answered ``auth_failed``; ``error`` is the hub's text."""

    def __init__(
        self, username: str, error: str, close_code: int | None, retry_after: float | None
    ) -> None:
        detail = f"auth_failed for {username!r}: {error}"
        if retry_after is not None:
            detail += f" (retryAfter={retry_after:g}s)"
        if close_code is not None:
            detail += f" [close code {close_code}]"
        super().__init__(detail)
        self.error = error
        self.close_code = close_code
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class PhoneBehaviour:
    """How the simulated phone reacts; delays are in seconds."""

    ack: bool = True
    ack_delay: float = 0.0
    sent_delay: float | None = 0.0  # None: never report sent (nor delivered)
    delivered_delay: float | None = 0.0  # counted after sent; None: never report delivered
    fail_rate: float = 0.0  # fraction of recipients reported failed instead of sent
    use_refs: bool = True
    reconnect: bool = True
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("ack_delay", "sent_delay", "delivered_delay"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be within [0, 1], got {self.fail_rate}")
        if self.backoff_initial <= 0 or self.backoff_max < self.backoff_initial:
            raise ValueError("need 0 < backoff_initial <= backoff_max")


DEFAULT_BEHAVIOUR = PhoneBehaviour()  # frozen, so one shared default is safe


@dataclass(slots=True)
class _Attempt:
    """What one connection attempt ended with."""

    authed: bool = False
    reply_seen: bool = False
    close_code: int | None = None
    auth_error: str | None = None
    retry_after: float | None = None
    fatal: str | None = None  # a reason not to reconnect at all


def utc_now() -> str:
    """ISO 8601 UTC with milliseconds and a Z, as Android's Instant.toString() gives."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class SimulatedPhone:
    """One gateway phone: a run-loop task holding at most one WebSocket to the hub."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        behaviour: PhoneBehaviour = DEFAULT_BEHAVIOUR,
        device_info: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        session: aiohttp.ClientSession | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        self.url = url
        self.username = username
        self._password = password
        self.behaviour = behaviour
        self.device_info: dict[str, Any] = (
            dict(device_info)
            if device_info is not None
            else {"model": "device_sim", "app": "sim-1", "sims": 1}
        )
        self._on_event = on_event
        self._session = session
        self._owns_session = session is None
        self._rng = random.Random(behaviour.seed)

        # From the latest auth_ok.
        self.token: str | None = token
        self.device_id: int | None = None
        self.heartbeat: float | None = None
        self.window: int | None = None
        self.protocol: int | None = None

        # Observations, for tests.
        self.frames: list[Frame] = []  # every frame received, in order
        self.received: list[Frame] = []  # first arrival of each (id, attempt) sms frame
        self.cancelled: list[int] = []
        self.errors: list[Frame] = []
        self.close_codes: list[int] = []
        self.reports: list[Frame] = []  # every status frame created (once, not resends)
        self.outgoing: list[Frame] = []  # every frame written after auth, resends included
        self.auth_count = 0

        self._seen: set[tuple[int, int]] = set()
        self._frame_seq = 0
        self._cancelled_at: dict[int, int] = {}  # id -> frame sequence number of its cancel
        self._outbox: dict[str, Frame] = {}  # ref -> frame, until ok/error (insertion order)
        self._send_lock = asyncio.Lock()  # the single writer path
        self._ws: aiohttp.ClientWebSocketResponse | None = None  # current socket, any phase
        self._live: aiohttp.ClientWebSocketResponse | None = None  # authed socket, for writes
        self._dropped: aiohttp.ClientWebSocketResponse | None = None
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._run_task: asyncio.Task[None] | None = None
        self._first_auth: asyncio.Future[None] | None = None
        self._stopping = False
        self._closing: asyncio.Future[bool] | None = None  # stop()'s close handshake
        self._crash: BaseException | None = None

    def __repr__(self) -> str:  # never shows the password or the token
        return (
            f"<SimulatedPhone {self.username!r} url={self.url!r} "
            f"device_id={self.device_id} connected={self.connected}>"
        )

    # ---- public state -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._live is not None

    @property
    def outbox_size(self) -> int:
        return len(self._outbox)

    @property
    def running(self) -> bool:
        """False once stopped, or after a close that forbids reconnecting (4401, 4409)."""
        return self._run_task is not None and not self._run_task.done()

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and authenticate; return after the first auth_ok, raise PhoneError else.

        After stop() it may be called again, like an app restart: the token, the outbox and
        the (id, attempt) keys already seen are kept, as a phone keeps them in its database.
        """
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        self._stopping = False
        self._closing = None
        self._crash = None
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._first_auth = asyncio.get_running_loop().create_future()
        self._run_task = asyncio.create_task(self._run_guarded(), name=f"phone:{self.username}")
        try:
            await self._first_auth
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close with 1000 and cancel every task (reports not yet due are abandoned).

        Safe to call more than once.
        """
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        ws = self._ws
        if ws is not None and not ws.closed and self._closing is None:
            # The run loop awaits this same future, so it records the hub's reply code.
            self._closing = asyncio.ensure_future(ws.close(code=aiohttp.WSCloseCode.OK))
        if self._run_task is not None and not self._run_task.done():
            # Between sockets (backoff, connecting) there is nothing to close: cancel at once.
            wait = STOP_TIMEOUT if self._closing is not None else 0
            done, _ = await asyncio.wait({self._run_task}, timeout=wait)
            if not done:
                self._run_task.cancel()
                await asyncio.wait({self._run_task})
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None
        self._live = None
        self._notify()

    async def wait_stopped(self) -> None:
        """Return when the run loop has ended (stop(), or a close that forbids reconnecting)."""
        if self._run_task is not None:
            await asyncio.wait({self._run_task})

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def drop(self) -> None:
        """Lose signal: kill the TCP connection without a close frame (reconnects if allowed)."""
        ws = self._ws
        if ws is None or ws.closed:
            return
        self._live = None
        self._dropped = ws
        self._abort(ws)
        self._notify()

    # ---- sending ------------------------------------------------------------------------

    async def send_inbound(self, sender: str, text: str, ref: str | None = None) -> str:
        """Forward a received SMS; it stays in the outbox (and is resent) until ``ok``."""
        ref = ref if ref is not None else str(uuid.uuid4())
        frame = {
            "type": "inbound",
            "ref": ref,
            "from": sender,
            "message": text,
            "receivedAt": utc_now(),
        }
        size = len(orjson.dumps(frame))
        if size > MAX_FRAME_BYTES:
            # A frame the hub rejects with 1009 would kill every connection it is resent on.
            raise ValueError(f"inbound frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
        await self._send_reliably(frame)
        self._event(f"inbound ref={ref} from={sender}")
        return ref

    async def send_heartbeat(self, battery: int, charging: bool, signal: int) -> bool:
        """Telemetry; returns False (and drops it) when not connected."""
        frame = {"type": "heartbeat", "battery": battery, "charging": charging, "signal": signal}
        return await self._send(frame)

    async def send_raw(self, frame: Frame | str | bytes) -> None:
        """Send anything: a dict as JSON text, a str verbatim as text, bytes as a binary frame.

        Raises ConnectionError when not connected, so a test cannot silently send nothing.
        """
        async with self._send_lock:
            ws = self._live
            if ws is None:
                raise ConnectionError(f"{self.username}: not connected")
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            elif isinstance(frame, str):
                await ws.send_str(frame)
            else:
                await ws.send_str(orjson.dumps(frame).decode())
                self.outgoing.append(frame)

    # ---- waiting ------------------------------------------------------------------------

    # A per-call deadline is the point of these two helpers, hence the timeout parameters.
    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,
    ) -> None:
        """Wait until predicate() is true; re-checked on every frame and state change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if self._crash is not None:
                raise RuntimeError(f"{self.username}: run loop crashed") from self._crash
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"{self.username}: condition not met within {timeout}s "
                    f"(connected={self.connected}, close_codes={self.close_codes}, "
                    f"sms received={len(self.received)}, outbox={self.outbox_size})"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, WAIT_POLL))

    async def wait_for_sms(self, count: int, timeout: float = 5.0) -> list[Frame]:
        """Wait for ``count`` distinct sms frames; return the first ``count`` of them."""
        await self.wait_for(lambda: len(self.received) >= count, timeout)
        return self.received[:count]

    # ---- run loop -----------------------------------------------------------------------

    async def _run_guarded(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # surface bugs to start()/wait_for() instead of hanging
            self._crash = exc
            self._event(f"crashed: {exc!r}")
            self._fail_first(exc)
        finally:
            self._live = None
            self._fail_first(PhoneError(f"{self.username}: stopped before authenticating"))
            self._notify()

    async def _run(self) -> None:
        failures = 0  # consecutive failed attempts; drives the backoff
        force_password = False  # set once a token login was refused, until the next auth_ok
        while not self._stopping:
            via_token = self.token is not None and not force_password
            try:
                result = await self._connect_once(via_token)
            except PhoneError as exc:
                if self._fail_first(exc):
                    return
                self._event(str(exc))
                result = _Attempt()
            if self._stopping:
                return
            first_pending = self._first_auth is not None and not self._first_auth.done()
            delay: float | None = None
            if result.fatal is not None:
                if not self._fail_first(PhoneError(f"{self.username}: {result.fatal}")):
                    self._event(f"not reconnecting: {result.fatal}")
                return
            if result.authed:
                failures = 0
                force_password = False
            elif result.auth_error == INVALID_CREDENTIALS and via_token:
                # Token revoked or password changed: try the password once, at once.
                force_password = True
                continue
            elif result.auth_error is not None:
                if first_pending:
                    self._fail_first(
                        AuthFailed(
                            self.username, result.auth_error, result.close_code, result.retry_after
                        )
                    )
                    return
                if result.auth_error == TOO_MANY_ATTEMPTS:
                    # At least retryAfter, plus jitter so throttled phones don't return together.
                    wait = result.retry_after
                    if wait is None:
                        wait = DEFAULT_RETRY_AFTER
                    delay = wait + self._rng.uniform(0.0, self.behaviour.backoff_initial)
            elif first_pending:
                why = "closed" if result.reply_seen else "no auth reply"
                self._fail_first(
                    PhoneError(f"{self.username}: {why} (close code {result.close_code})")
                )
                return
            if result.close_code in STOP_CODES:
                self._event(f"not reconnecting after close code {result.close_code}")
                return
            if not self.behaviour.reconnect:
                return
            if delay is None:
                # Full jitter: uniform over [0, capped exponential]; the exponent is bounded.
                cap = self.behaviour.backoff_initial * 2 ** min(failures, 32)
                delay = self._rng.uniform(0.0, min(self.behaviour.backoff_max, cap))
            failures += 1
            self._event(f"reconnecting in {delay:.2f}s")
            await asyncio.sleep(delay)

    async def _connect_once(self, via_token: bool) -> _Attempt:
        assert self._session is not None
        result = _Attempt()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                ws = await self._session.ws_connect(self.url, autoping=True)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise PhoneError(f"{self.username}: cannot connect to {self.url}: {exc!r}") from exc
        self._ws = ws
        try:
            auth: Frame = {"type": "auth"}
            if via_token:
                auth["token"] = self.token
            else:
                auth.update(username=self.username, password=self._password)
                auth["device"] = self.device_info
            await ws.send_str(orjson.dumps(auth).decode())
            reply = await self._receive_frame(ws, AUTH_REPLY_TIMEOUT)
            result.reply_seen = reply is not None
            if reply is not None and reply.get("type") == "auth_ok":
                if reply.get("protocol", PROTOCOL_VERSION) != PROTOCOL_VERSION:
                    result.fatal = f"unsupported protocol {reply.get('protocol')!r}"
                    self._event(result.fatal)
                    return result
                result.authed = True
                await self._go_live(ws, reply, via_token)
                await self._read_loop(ws)
            elif reply is not None and reply.get("type") == "auth_failed":
                result.auth_error = str(reply.get("error", ""))
                result.retry_after = _as_float(reply.get("retryAfter"))
                self._event(f"auth_failed error={result.auth_error!r}")
                await self._drain_until_closed(ws)
            elif reply is not None:
                self._event(f"unexpected first frame type={reply.get('type')!r}")
        except (aiohttp.ClientError, ConnectionError) as exc:
            self._event(f"connection error: {exc!r}")
        finally:
            self._live = None
            self._ws = None
            if self._closing is not None:
                await asyncio.wait({self._closing})
            elif not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
            # aiohttp reports an IntEnum for its own codes; record plain ints.
            code = ABNORMAL_CLOSURE if ws.close_code is None else int(ws.close_code)
            if ws is self._dropped:
                code = ABNORMAL_CLOSURE  # no close frame was exchanged
            self._dropped = None
            result.close_code = code
            self.close_codes.append(code)
            self._event(f"closed code={code}")
            self._notify()
        return result

    async def _go_live(
        self, ws: aiohttp.ClientWebSocketResponse, auth_ok: Frame, via_token: bool
    ) -> None:
        self.token = auth_ok.get("token", self.token)
        self.device_id = auth_ok.get("deviceId")
        self.heartbeat = _as_float(auth_ok.get("heartbeat"))
        self.window = auth_ok.get("window")
        self.protocol = auth_ok.get("protocol")
        self.auth_count += 1
        # Under the writer lock, so a report queued meanwhile is sent exactly once.
        async with self._send_lock:
            self._live = ws
            pending = list(self._outbox.values())
            for frame in pending:
                await self._write(ws, frame)
        self._event(
            f"connected deviceId={self.device_id} heartbeat={auth_ok.get('heartbeat')} "
            f"window={self.window} via={'token' if via_token else 'password'}"
            + (f" resent={len(pending)}" if pending else "")
        )
        self._fail_first(None)
        self._notify()

    async def _read_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        # The hub pings every `heartbeat` s and aiohttp answers them inside receive(), which
        # restarts its timeout; a silent socket for two periods is a dead hub or network.
        timeout = 2 * self.heartbeat if self.heartbeat else None
        while True:
            try:
                msg = await ws.receive(timeout=timeout)
            except TimeoutError:
                self._event(f"nothing from the hub for {timeout:g}s; dropping the connection")
                self._dropped = ws
                self._abort(ws)
                return
            if msg.type is aiohttp.WSMsgType.TEXT:
                frame = self._decode(msg.data)
                if frame is not None:
                    self._dispatch(frame)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                self._event("ignored a binary frame")
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                return

    async def _receive_frame(
        self, ws: aiohttp.ClientWebSocketResponse, wait: float
    ) -> Frame | None:
        """Next JSON frame (recorded), or None once the socket closes or stays silent."""
        while True:
            try:
                msg = await ws.receive(timeout=wait)
            except TimeoutError:
                return None
            if msg.type is aiohttp.WSMsgType.TEXT:
                frame = self._decode(msg.data)
                if frame is not None:
                    self._record(frame)
                    self._notify()
                    return frame
            elif msg.type is not aiohttp.WSMsgType.BINARY:
                return None

    async def _drain_until_closed(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        # The hub closes right after auth_failed; reading on yields its close code.
        while await self._receive_frame(ws, CLOSE_DRAIN_TIMEOUT) is not None:
            pass

    # ---- incoming frames ----------------------------------------------------------------

    def _decode(self, data: str) -> Frame | None:
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._event(f"ignored non-JSON text frame ({len(data)} chars)")
            return None
        if not isinstance(frame, dict):
            self._event("ignored a JSON frame that is not an object")
            return None
        return frame

    def _record(self, frame: Frame) -> None:
        self.frames.append(frame)
        self._frame_seq += 1

    def _dispatch(self, frame: Frame) -> None:
        self._record(frame)
        kind = frame.get("type")
        if kind == "sms":
            self._on_sms(frame)
        elif kind == "cancel":
            msg_id = frame.get("id")
            if isinstance(msg_id, int):
                self._cancelled_at[msg_id] = self._frame_seq
                self.cancelled.append(msg_id)
            self._event(f"cancel id={msg_id}")
        elif kind == "ok":
            self._confirm(frame.get("ref"))
        elif kind == "error":
            # An error is final (e.g. unknown message): resending would fail again.
            self._confirm(frame.get("ref"))
            self.errors.append(frame)
            self._event(f"error ref={frame.get('ref')} error={frame.get('error')!r}")
        else:
            self._event(f"ignored frame type={kind!r}")
        self._notify()

    def _confirm(self, ref: Any) -> None:
        if isinstance(ref, str):
            self._outbox.pop(ref, None)

    def _on_sms(self, frame: Frame) -> None:
        msg_id = frame.get("id")
        attempt = frame.get("attempt") or 1  # "may be left out when it is 1"
        to = frame.get("to")
        if not (isinstance(msg_id, int) and isinstance(attempt, int) and isinstance(to, list)):
            self._event(f"ignored malformed sms frame id={msg_id!r}")
            return
        key = (msg_id, attempt)
        duplicate = key in self._seen
        if not duplicate:
            self._seen.add(key)
            self.received.append(frame)
        message = str(frame.get("message", ""))
        self._event(
            f"sms id={msg_id} attempt={attempt} priority={frame.get('priority')} to={len(to)} "
            f"chars={len(message)}" + (" duplicate" if duplicate else "")
        )
        self._spawn(self._handle_sms(frame, attempt, duplicate, self._frame_seq))

    async def _handle_sms(self, frame: Frame, attempt: int, duplicate: bool, seq: int) -> None:
        behaviour = self.behaviour
        msg_id = frame["id"]
        if behaviour.ack:
            if behaviour.ack_delay:
                await asyncio.sleep(behaviour.ack_delay)
            await self._send({"type": "ack", "id": msg_id, "attempt": attempt})
        if duplicate or behaviour.sent_delay is None:
            return  # a repeated (id, attempt) is acked again, never sent twice
        if behaviour.sent_delay:
            await asyncio.sleep(behaviour.sent_delay)
        if self._cancelled_at.get(msg_id, -1) > seq:
            return  # withdrawn before we "sent" it
        expires = _parse_time(frame.get("expiresAt"))
        if expires is not None and datetime.now(UTC) > expires:
            self._event(f"expired id={msg_id} attempt={attempt}; not sending")
            return  # never start sending after expiresAt; the hub expires it itself
        delivered: list[str] = []
        for to in frame["to"]:
            if behaviour.fail_rate and self._rng.random() < behaviour.fail_rate:
                await self._report(msg_id, attempt, to, "failed", FAILURE_ERROR)
            else:
                await self._report(msg_id, attempt, to, "sent")
                delivered.append(to)
        if behaviour.delivered_delay is None or not delivered:
            return
        if behaviour.delivered_delay:
            await asyncio.sleep(behaviour.delivered_delay)
        for to in delivered:
            await self._report(msg_id, attempt, to, "delivered")

    async def _report(
        self, msg_id: int, attempt: int, to: str, status: str, error: str | None = None
    ) -> None:
        frame: Frame = {"type": "status"}
        if self.behaviour.use_refs:
            frame["ref"] = str(uuid.uuid4())
        frame.update(id=msg_id, attempt=attempt, to=to, status=status, at=utc_now())
        if error is not None:
            frame["error"] = error
        self.reports.append(frame)
        self._event(f"status id={msg_id} attempt={attempt} to={to} {status}")
        if self.behaviour.use_refs:
            await self._send_reliably(frame)
        else:
            await self._send(frame)  # fire and forget: lost if offline, like a naive app

    # ---- writer -------------------------------------------------------------------------

    async def _send(self, frame: Frame) -> bool:
        async with self._send_lock:
            ws = self._live
            return ws is not None and await self._write(ws, frame)

    async def _send_reliably(self, frame: Frame) -> None:
        # Into the outbox and onto the wire in one critical section: see _go_live.
        async with self._send_lock:
            self._outbox[frame["ref"]] = frame
            ws = self._live
            if ws is not None:
                await self._write(ws, frame)

    async def _write(self, ws: aiohttp.ClientWebSocketResponse, frame: Frame) -> bool:
        try:
            await ws.send_str(orjson.dumps(frame).decode())
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            return False  # the read loop notices the closed socket and reconnects
        self.outgoing.append(frame)
        return True

    # ---- helpers ------------------------------------------------------------------------

    def _abort(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Close the TCP connection under the socket: no close frame is sent."""
        response = getattr(ws, "_response", None)  # aiohttp has no public handle on this
        connection = getattr(response, "connection", None)
        transport = getattr(connection, "transport", None)
        if transport is not None:
            transport.abort()
            return
        sock = ws.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _fail_first(self, exc: BaseException | None) -> bool:
        """Settle start(): None means success. True if this call settled it."""
        first = self._first_auth
        if first is None or first.done():
            return False
        if exc is None:
            first.set_result(None)
        else:
            first.set_exception(exc)
        return True

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _notify(self) -> None:
        # Wake every current waiter, then arm a fresh event for the next change.
        self._changed.set()
        self._changed = asyncio.Event()

    def _event(self, text: str) -> None:
        if self._on_event is not None:
            self._on_event(text)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)  # 3.11 accepts the trailing Z
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


# ---- command line -----------------------------------------------------------------------


def _optional_delay(text: str) -> float | None:
    if text.strip().lower() in {"none", "never", "off"}:
        return None
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0 or 'none'")
    return value


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="device_sim.py",
        description="Simulated Android gateway phone(s) for smsnodes-hub (protocol v1).",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"hub WebSocket URL ({DEFAULT_URL})")
    parser.add_argument("--username", required=True, help="device account name")
    secret = parser.add_mutually_exclusive_group(required=True)
    secret.add_argument(
        "--password",
        help="account password (visible to other local users; prefer --password-stdin)",
    )
    secret.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    parser.add_argument(
        "--count", type=int, default=1, help="run N phones named USERNAME-1..USERNAME-N"
    )
    parser.add_argument(
        "--inbound",
        type=int,
        default=0,
        metavar="N",
        help="after auth, forward N inbound SMS from +15550000000",
    )
    behaviour = parser.add_argument_group("behaviour")
    behaviour.add_argument("--no-ack", action="store_true", help="never ack sms frames")
    behaviour.add_argument("--ack-delay", type=float, default=0.0, metavar="S")
    behaviour.add_argument(
        "--sent-delay",
        type=_optional_delay,
        default=0.0,
        metavar="S|none",
        help="seconds until 'sent' is reported; none = never",
    )
    behaviour.add_argument(
        "--delivered-delay",
        type=_optional_delay,
        default=0.0,
        metavar="S|none",
        help="seconds after 'sent' until 'delivered'; none = never",
    )
    behaviour.add_argument(
        "--fail-rate",
        type=float,
        default=0.0,
        metavar="F",
        help="fraction of recipients reported failed (0..1)",
    )
    behaviour.add_argument(
        "--no-refs", action="store_true", help="send status reports without ref (no outbox)"
    )
    behaviour.add_argument("--no-reconnect", action="store_true")
    behaviour.add_argument("--backoff-initial", type=float, default=0.5, metavar="S")
    behaviour.add_argument("--backoff-max", type=float, default=30.0, metavar="S")
    behaviour.add_argument(
        "--seed", type=int, default=None, help="random seed (phone i uses SEED+i-1)"
    )
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be >= 1")
    if args.inbound < 0:
        parser.error("--inbound must be >= 0")
    try:
        args.behaviour = PhoneBehaviour(
            ack=not args.no_ack,
            ack_delay=args.ack_delay,
            sent_delay=args.sent_delay,
            delivered_delay=args.delivered_delay,
            fail_rate=args.fail_rate,
            use_refs=not args.no_refs,
            reconnect=not args.no_reconnect,
            backoff_initial=args.backoff_initial,
            backoff_max=args.backoff_max,
            seed=args.seed,
        )
    except ValueError as exc:
        parser.error(str(exc))
    return args


def _read_password(args: argparse.Namespace) -> str:
    if not args.password_stdin:
        return str(args.password)
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    return sys.stdin.readline().rstrip("\r\n")


def _printer(name: str) -> EventSink:
    def emit(text: str) -> None:
        print(f"[{name}] {text}", flush=True)

    return emit


async def _wait_all_stopped(phones: list[SimulatedPhone]) -> None:
    for phone in phones:
        await phone.wait_stopped()


async def _amain(args: argparse.Namespace, password: str) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # e.g. Windows
            loop.add_signal_handler(sig, stop.set)

    names = (
        [args.username]
        if args.count == 1
        else [f"{args.username}-{i}" for i in range(1, args.count + 1)]
    )
    base: PhoneBehaviour = args.behaviour
    # limit=0: each upgraded WebSocket holds a connector slot for its whole life.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        phones = [
            SimulatedPhone(
                args.url,
                name,
                password,
                base if base.seed is None else replace(base, seed=base.seed + i),
                session=session,
                on_event=_printer(name),
            )
            for i, name in enumerate(names)
        ]
        stopper = asyncio.ensure_future(stop.wait())
        try:
            starting = asyncio.gather(*(p.start() for p in phones), return_exceptions=True)
            first: set[asyncio.Future[Any]] = {starting, stopper}
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                return 0
            failed = [exc for exc in starting.result() if exc is not None]
            if failed:
                for exc in failed:
                    print(f"device_sim: {exc}", file=sys.stderr)
                return 1
            for phone in phones:
                for i in range(1, args.inbound + 1):
                    await phone.send_inbound("+15550000000", f"sim inbound {i}")
            all_stopped = asyncio.ensure_future(_wait_all_stopped(phones))
            await asyncio.wait({stopper, all_stopped}, return_when=asyncio.FIRST_COMPLETED)
            all_stopped.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await all_stopped
            if stop.is_set():
                return 0
            print("device_sim: every phone stopped for good", file=sys.stderr)
            return 1
        finally:
            stopper.cancel()
            await asyncio.gather(*(p.stop() for p in phones), return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        password = _read_password(args)
        return asyncio.run(_amain(args, password))
    except KeyboardInterrupt:  # at the password prompt, or where signal handlers are missing
        return 0


if __name__ == "__main__":
    sys.exit(main())
