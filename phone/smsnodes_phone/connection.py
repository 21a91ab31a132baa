"""The socket under a phone session: the aiohttp client session, one WebSocket at a time,
the close handshake and the hard drop (no close frame, as when signal is lost)."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import aiohttp

from .errors import PhoneError
from .frames import ABNORMAL_CLOSURE

CONNECT_TIMEOUT = 10.0
AUTH_REPLY_TIMEOUT = 15.0  # the hub itself gives up on a silent client after 10 s
CLOSE_DRAIN_TIMEOUT = 5.0


class Connector:
    def __init__(self, url: str, session: aiohttp.ClientSession | None) -> None:
        self.url = url
        self._session = session
        self._owns_session = session is None
        self._ws: aiohttp.ClientWebSocketResponse | None = None  # current socket, any phase
        self._dropped: aiohttp.ClientWebSocketResponse | None = None
        self._closing: asyncio.Future[bool] | None = None  # stop()'s close handshake

    def _open_session(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()

    async def _close_session(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _open_socket(self, who: str) -> aiohttp.ClientWebSocketResponse:
        assert self._session is not None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                ws = await self._session.ws_connect(self.url, autoping=True)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise PhoneError(f"{who}: cannot connect to {self.url}: {_reason(exc)}") from exc
        self._ws = ws
        return ws

    async def _finish_socket(self, ws: aiohttp.ClientWebSocketResponse) -> int:
        """Close (or await stop()'s close) and return the close code to record."""
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
        return code

    def _begin_close(self) -> None:
        ws = self._ws
        if ws is not None and not ws.closed and self._closing is None:
            # The run loop awaits this same future, so it records the hub's reply code.
            self._closing = asyncio.ensure_future(ws.close(code=aiohttp.WSCloseCode.OK))

    def _abort_current(self) -> bool:
        ws = self._ws
        if ws is None or ws.closed:
            return False
        self._dropped = ws
        abort(ws)
        return True


def abort(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Close the TCP connection under the socket: no close frame is sent."""
    response = getattr(ws, "_response", None)  # aiohttp has no public handle on this
    conn = getattr(response, "connection", None)
    transport = getattr(conn, "transport", None)
    if transport is not None:
        transport.abort()
        return
    sock = ws.get_extra_info("socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _reason(exc: BaseException) -> str:
    """Why a connect failed, in words (aiohttp's repr names internal connection keys)."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:g} s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (is the hub running on that port?)"
        return cause.strerror or str(cause)
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"the server answered HTTP {exc.status} (is this a hub's /ws/device URL?)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
