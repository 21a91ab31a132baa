"""One phone's connection to the hub: auth, reconnects, the single writer, the outbox.

The careful client of PROTOCOL.md: password login first, token login on every reconnect
(the password once more, at once, when the token is refused), exponential backoff with full
jitter, at least ``retryAfter`` after 4429, no reconnect after 4401/4409, and every frame
that carries a ``ref`` kept in the outbox until ``ok``. What to do with ``sms`` and
``cancel`` frames is left to subclasses (the agent's gateway, the test simulator).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from . import connection
from .backoff import full_jitter
from .channel import EventSink, FrameChannel
from .errors import AuthFailed, PhoneError
from .frames import (
    INVALID_CREDENTIALS,
    PROTOCOL_VERSION,
    STOP_CODES,
    TOO_MANY_ATTEMPTS,
    Frame,
    as_float,
    encode,
)
from .outbox import Outbox

STOP_TIMEOUT = 5.0
DEFAULT_RETRY_AFTER = 60.0
WAIT_POLL = 0.05  # wait_for() re-checks this often so predicates on outside state work too


@dataclass(slots=True)
class Attempt:
    """What one connection attempt ended with."""

    authed: bool = False
    reply_seen: bool = False
    close_code: int | None = None
    auth_error: str | None = None
    retry_after: float | None = None
    fatal: str | None = None  # a reason not to reconnect at all


class PhoneSession(FrameChannel):
    """A run-loop task holding at most one WebSocket to the hub."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str | None,
        device_info: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        session: aiohttp.ClientSession | None = None,
        on_event: EventSink | None = None,
        reconnect: bool = True,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        rng: random.Random | None = None,
        outbox: Outbox | None = None,
        record: bool = True,
        retry_first: bool = False,
    ) -> None:
        super().__init__(url, session, on_event=on_event, outbox=outbox, record=record)
        if backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        self.username = username
        self._password = password
        self.device_info: dict[str, Any] = dict(device_info or {})
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._rng = rng or random.Random()
        # False: start() fails when the first connection does; True: it keeps trying (an
        # agent started at boot, before the network). Refused credentials fail either way.
        self.retry_first = retry_first

        # From the latest auth_ok.
        self.token: str | None = token
        self.device_id: int | None = None
        self.heartbeat: float | None = None
        self.window: int | None = None
        self.protocol: int | None = None

        self.close_codes: list[int] = []
        self.auth_count = 0

        self._run_task: asyncio.Task[None] | None = None
        self._first_auth: asyncio.Future[None] | None = None
        self._stopping = False
        self._crash: BaseException | None = None

    def __repr__(self) -> str:  # never shows the password or the token
        return (
            f"<{type(self).__name__} {self.username!r} url={self.url!r} "
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
        what subclasses remember are kept.
        """
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        self._stopping = False
        self._closing = None
        self._crash = None
        self._open_session()
        self._first_auth = asyncio.get_running_loop().create_future()
        self._run_task = asyncio.create_task(self._run_guarded(), name=f"phone:{self.username}")
        try:
            await self._first_auth
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close with 1000 and cancel every task (work not yet due is abandoned).

        Safe to call more than once.
        """
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        self._begin_close()
        if self._run_task is not None and not self._run_task.done():
            # Between sockets (backoff, connecting) there is nothing to close: cancel at once.
            wait = STOP_TIMEOUT if self._closing is not None else 0
            done, _ = await asyncio.wait({self._run_task}, timeout=wait)
            if not done:
                self._run_task.cancel()
                await asyncio.wait({self._run_task})
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        await self._close_session()
        self._live = None
        self._notify()

    async def wait_stopped(self) -> None:
        """Return when the run loop has ended (stop(), or a close that forbids reconnecting)."""
        if self._run_task is not None:
            await asyncio.wait({self._run_task})

    async def drop(self) -> None:
        """Lose signal: kill the TCP connection without a close frame (reconnects if allowed)."""
        if self._abort_current():
            self._live = None
            self._notify()

    # ---- waiting ------------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
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
                    f"{self._progress()}, outbox={self.outbox_size})"
                )
            with contextlib.suppress(TimeoutError):  # not wait_for: see radio/proc.py
                async with asyncio.timeout(min(remaining, WAIT_POLL)):
                    await self._changed.wait()

    def _progress(self) -> str:
        return f"frames={self._frame_seq}"

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
            via_token = self.token is not None and (force_password is False)
            if not via_token and self._password is None:
                self._fail_first(PhoneError(f"{self.username}: no password and no token"))
                self._event("not reconnecting: the token was refused and no password is known")
                return
            try:
                result = await self._connect_once(via_token)
            except PhoneError as exc:
                if not self.retry_first and self._fail_first(exc):
                    return
                self._event(str(exc))
                result = Attempt()
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
                self._on_token_refused()
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
                    delay = wait + self._rng.uniform(0.0, self.backoff_initial)
            elif first_pending and not self.retry_first:
                why = "closed" if result.reply_seen else "no auth reply"
                self._fail_first(
                    PhoneError(f"{self.username}: {why} (close code {result.close_code})")
                )
                return
            if result.close_code in STOP_CODES:
                self._event(f"not reconnecting after close code {result.close_code}")
                return
            if not self.reconnect:
                return
            if delay is None:
                delay = full_jitter(self._rng, failures, self.backoff_initial, self.backoff_max)
            failures += 1
            self._event(f"reconnecting in {delay:.2f}s")
            await asyncio.sleep(delay)

    async def _connect_once(self, via_token: bool) -> Attempt:
        result = Attempt()
        ws = await self._open_socket(self.username)
        try:
            auth: Frame = {"type": "auth"}
            if via_token:
                auth["token"] = self.token
            else:
                auth.update(username=self.username, password=self._password)
                if self.device_info:
                    auth["device"] = self.device_info
            await ws.send_str(encode(auth))
            reply = await self._receive_frame(ws, connection.AUTH_REPLY_TIMEOUT)
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
                result.retry_after = as_float(reply.get("retryAfter"))
                self._event(f"auth_failed error={result.auth_error!r}")
                await self._drain_until_closed(ws)
            elif reply is not None:
                self._event(f"unexpected first frame type={reply.get('type')!r}")
        except (aiohttp.ClientError, ConnectionError) as exc:
            self._event(f"connection error: {exc!r}")
        finally:
            self._live = None
            code = await self._finish_socket(ws)
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
        self.heartbeat = as_float(auth_ok.get("heartbeat"))
        self.window = auth_ok.get("window")
        self.protocol = auth_ok.get("protocol")
        self.auth_count += 1
        self._on_auth_ok(auth_ok)
        # Under the writer lock, so a report queued meanwhile is sent exactly once.
        async with self._send_lock:
            self._live = ws
            pending = self._outbox.frames()
            for frame in pending:
                await self._write(ws, frame)
        self._event(
            f"connected deviceId={self.device_id} heartbeat={auth_ok.get('heartbeat')} "
            f"window={self.window} via={'token' if via_token else 'password'}"
            + (f" resent={len(pending)}" if pending else "")
        )
        self._fail_first(None)
        self._on_live()
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
                self._abort_current()
                return
            if msg.type is aiohttp.WSMsgType.TEXT:
                frame = self._decode(msg.data)
                if frame is not None:
                    self._dispatch(frame)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                self._event("ignored a binary frame")
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                return

    # ---- helpers ------------------------------------------------------------------------

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
