"""The device WebSocket endpoint (PROTOCOL.md): an auth phase, then one reader loop in the
handler task while the connection's writer task does all the writing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace

from aiohttp import WSMsgType, web

from smsnodes_hub.appkeys import AUTH, HUB, POOL, SETTINGS
from smsnodes_hub.auth import logins
from smsnodes_hub.auth.accounts import Principal
from smsnodes_hub.auth.addresses import client_address
from smsnodes_hub.auth.throttle import Throttled
from smsnodes_hub.batching import NOT_COMMITTED
from smsnodes_hub.device import protocol
from smsnodes_hub.device import store as devices
from smsnodes_hub.device.connection import DeviceConnection
from smsnodes_hub.device.protocol import CloseCode
from smsnodes_hub.messaging import inbound, messages, reports, retries

log = logging.getLogger(__name__)
# Ack and status frames of one phone being recorded at once; past this the socket is not
# read until one finishes (a phone that floods waits, nobody else does).
MAX_PENDING_FRAMES = 256
HANDLING_GRACE = 15.0  # seconds a closing socket waits for its frames to be recorded



async def device_socket(request: web.Request) -> web.WebSocketResponse:
    # No permessage-deflate: frames are small JSON, and each compressing socket would hold
    # a zlib compressor and decompressor (hundreds of KB) for as long as it is open.
    ws = web.WebSocketResponse(max_msg_size=protocol.MAX_FRAME, autoping=False, compress=False)
    await ws.prepare(request)
    conn = await _login(request, ws)
    if conn is None:
        return ws
    hub = request.app[HUB]
    try:
        await _read_loop(ws, conn)
    finally:
        conn.close(CloseCode.NORMAL)
        # aiohttp cancels this handler when the peer vanishes: the cleanup (presence row,
        # requeue of what was in flight) runs in its own task so it is never cut short.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(hub.detach_soon(conn))
        await conn.wait_closed()
        log.info("device %s disconnected", conn.device_id)
    return ws


async def _login(request: web.Request, ws: web.WebSocketResponse) -> DeviceConnection | None:
    """The phone's connection, authenticated, attached and told auth_ok; None (and the
    socket closed) when it cannot be. Apart from the handler, so that what only the login
    needed (the auth frame with its password, the token) is not held for the connection's
    whole life: ten thousand phones held half a kilobyte each of it."""
    remote = client_address(request)
    try:
        authenticated = await _authenticate(request, ws, remote)
    except NOT_COMMITTED as exc:  # the database, or the hub stopping (its lanes closed)
        log.warning("device login failed: database unavailable: %s", exc)
        await ws.close(code=CloseCode.TRY_AGAIN, message=b"database unavailable")
        return None
    if authenticated is None:
        return None
    return await _open(request, ws, remote, *authenticated)


async def _open(
    request: web.Request, ws: web.WebSocketResponse, remote: str, principal: Principal,
    token: str, auth: protocol.Auth,
) -> DeviceConnection | None:
    """The authenticated phone's connection, attached and told auth_ok; None (and the
    socket closed) when it cannot be."""
    settings = request.app[SETTINGS]
    hub = request.app[HUB]
    conn = DeviceConnection(
        ws,
        principal,
        request.app[POOL],
        hub.lanes,
        window=settings.device.window,
        ack_timeout=settings.device.ack_timeout,
        keepalive=hub.keepalive,
        outbox_size=settings.device.outbox_size,
        remote=remote,
        pacer=hub.pacer(principal.phone_id),
        delivery=settings.delivery,
    )
    try:
        attached = await hub.attach(conn, model=auth.model, app=auth.app, sims=auth.sims)
    except NOT_COMMITTED as exc:  # the database, or the hub stopping
        log.warning("device %s login failed: database unavailable: %s", principal.device_id, exc)
        await ws.close(code=CloseCode.TRY_AGAIN, message=b"database unavailable")
        return None
    if attached is None:
        await _refuse(ws, protocol.INVALID_CREDENTIALS, CloseCode.INVALID_CREDENTIALS)
        return None
    conn.send(
        protocol.auth_ok(
            principal.phone_id,
            principal.username,
            token,
            settings.device.heartbeat,
            settings.device.window,
        )
    )
    conn.start_writer()
    # Only now may sms and cancel frames follow (auth_ok must be the first frame); these
    # cancels are for messages cancelled or expired while the phone was away.
    conn.set_ready(attached)
    log.info("device %s connected from %s", principal.device_id, remote)
    return conn


async def _refuse(
    ws: web.WebSocketResponse, error: str, code: CloseCode, retry_after: int | None = None
) -> None:
    await ws.send_str(protocol.auth_failed(error, retry_after).decode())
    await ws.close(code=code, message=error.encode())


async def _authenticate(
    request: web.Request, ws: web.WebSocketResponse, remote: str
) -> tuple[Principal, str, protocol.Auth] | None:
    settings = request.app[SETTINGS]
    deadline = time.monotonic() + settings.device.auth_timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            msg = await ws.receive(timeout=max(remaining, 0.001))
        except TimeoutError:
            await _refuse(ws, protocol.AUTH_TIMEOUT, CloseCode.AUTH_TIMEOUT)
            return None
        if msg.type == WSMsgType.PING:
            await ws.pong(msg.data)
            continue
        if msg.type == WSMsgType.PONG:
            continue
        if msg.type != WSMsgType.TEXT:
            await _close_for(ws, msg)
            return None
        break
    try:
        auth = protocol.parse_auth(protocol.decode(msg.data))
    except protocol.FatalFrame as exc:
        await ws.close(code=CloseCode.PROTOCOL_ERROR, message=str(exc).encode())
        return None
    except protocol.FrameError:
        await _refuse(ws, protocol.INVALID_CREDENTIALS, CloseCode.INVALID_CREDENTIALS)
        return None

    authenticator = request.app[AUTH]
    pool = request.app[POOL]
    try:
        if auth.token is not None:  # not throttled, as over HTTP (api/auth.py)
            principal = await authenticator.login_session(request.app[HUB].lookups, auth.token)
            token = auth.token
        else:
            assert auth.username is not None and auth.password is not None
            principal = await authenticator.login(pool, auth.username, auth.password, remote)
            token = ""
    except Throttled as exc:
        await _refuse(
            ws, protocol.TOO_MANY_ATTEMPTS, CloseCode.TOO_MANY_ATTEMPTS, exc.retry_after
        )
        return None
    if principal is not None and principal.is_account:
        principal = None  # an account's own password is no phone's: it cannot connect
    if principal is None:
        await _refuse(ws, protocol.INVALID_CREDENTIALS, CloseCode.INVALID_CREDENTIALS)
        return None
    if auth.token is None:
        issued = await logins.issue_session_token(pool, principal)
        if issued is None:  # the password changed between the check and now
            await _refuse(ws, protocol.INVALID_CREDENTIALS, CloseCode.INVALID_CREDENTIALS)
            return None
        token, token_id = issued
        # The socket now lives on this session token: revoking it ends the connection.
        principal = replace(principal, token_id=token_id)
    return principal, token, auth


async def _close_for(ws: web.WebSocketResponse, msg: object) -> None:
    """Close for a frame the contract does not allow (or notice the peer closed)."""
    kind = getattr(msg, "type", None)
    if kind == WSMsgType.BINARY:
        await ws.close(code=CloseCode.PROTOCOL_ERROR, message=b"binary frames are not allowed")
    elif kind == WSMsgType.ERROR and not ws.closed:
        # aiohttp reports an oversized frame here (and usually has closed with 1009 itself).
        await ws.close(code=CloseCode.TOO_LARGE, message=b"frame too large")


async def _read_loop(ws: web.WebSocketResponse, conn: DeviceConnection) -> None:
    # Acks and status reports are answered as their batch commits, without holding up the
    # frames behind them: an ack never waits for the reports read before it. The set is made
    # at the first of them: an idle phone sends none.
    handling: set[asyncio.Task[bool]] | None = None
    try:
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.TEXT:
                try:
                    frame = protocol.parse(protocol.decode(msg.data))
                except protocol.FatalFrame as exc:
                    conn.close(CloseCode.PROTOCOL_ERROR, str(exc))
                    return
                except protocol.FrameError as exc:
                    conn.send(protocol.error(str(exc), exc.ref))
                    continue
                if isinstance(frame, protocol.Ack | protocol.Status):
                    if handling is None:
                        handling = set()
                    if len(handling) >= MAX_PENDING_FRAMES:  # stop reading: back-pressure
                        await asyncio.wait(handling, return_when=asyncio.FIRST_COMPLETED)
                    task = asyncio.create_task(_handle_guarded(conn, frame))
                    handling.add(task)
                    task.add_done_callback(handling.discard)
                elif not await _handle_guarded(conn, frame):
                    return
            elif msg.type == WSMsgType.PING:
                conn.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                conn.pong_received()
            elif msg.type == WSMsgType.BINARY:
                conn.close(CloseCode.PROTOCOL_ERROR, "binary frames are not allowed")
                return
            else:  # CLOSE, CLOSING, CLOSED, ERROR (too large: aiohttp closes with 1009 itself)
                if msg.type == WSMsgType.ERROR and not ws.closed:
                    conn.close(CloseCode.TOO_LARGE, "frame too large")
                return
            if not conn.open:
                return  # a handler closed the socket (the database was lost)
    finally:
        # What the phone already sent is recorded even if it hung up meanwhile (bounded:
        # the lanes answer every write within their close timeout anyway).
        if handling:
            await asyncio.wait(handling, timeout=HANDLING_GRACE)


async def _handle_guarded(conn: DeviceConnection, frame: protocol.Frame) -> bool:
    """Handle one frame; False (and the socket closed) when it could not be recorded."""
    try:
        await _handle(conn, frame)
    except NOT_COMMITTED as exc:
        # Not durable, so no `ok`: the phone keeps the frame and resends it later.
        log.warning("device %s: frame not stored: %s", conn.device_id, exc)
        conn.close(CloseCode.TRY_AGAIN, "database unavailable")
        return False
    except Exception:
        log.exception("device %s: frame handling failed", conn.device_id)
        conn.close(CloseCode.INTERNAL_ERROR, "internal error")
        return False
    return True


async def _handle(conn: DeviceConnection, frame: protocol.Frame) -> None:
    pool = conn.pool
    principal = conn.principal
    if isinstance(frame, protocol.Ack):
        conn.settle_attempt(frame.id, frame.attempt)  # the window frees as the ack arrives
        current = await conn.lanes.ack(
            messages.Ack(conn.device_id, frame.id, frame.attempt))
        if current is None:
            return _reply_error(conn, frame.ref, f"Unknown message {frame.id}")
        if frame.attempt > current:
            return _reply_error(conn, frame.ref, f"Unknown attempt {frame.attempt} of {frame.id}")
        if frame.attempt == current:
            conn.settle(frame.id)
        return _reply_ok(conn, frame.ref)

    if isinstance(frame, protocol.Status):
        outcome = await _record_status(conn, frame)
        if not outcome.found:
            if await reports.message_exists(pool, conn.device_id, frame.id):
                return _reply_error(
                    conn, frame.ref, f"Unknown recipient {frame.to} of message {frame.id}"
                )
            return _reply_error(conn, frame.ref, f"Unknown message {frame.id}")
        assert outcome.current_attempt is not None
        if frame.attempt > outcome.current_attempt:
            return _reply_error(conn, frame.ref, f"Unknown attempt {frame.attempt} of {frame.id}")
        if outcome.accepted:
            conn.settle(frame.id)
        return _reply_ok(conn, frame.ref)

    if isinstance(frame, protocol.Inbound):
        await inbound.store_inbound(
            pool, principal, frame.ref, frame.sender, frame.message, frame.received_at
        )
        return _reply_ok(conn, frame.ref)

    await devices.record_telemetry(
        pool, conn.device_id, frame.battery, frame.charging, frame.signal
    )
    _reply_ok(conn, frame.ref)


async def _record_status(
    conn: DeviceConnection, frame: protocol.Status
) -> reports.StatusOutcome:
    delivery = conn.delivery
    retry = (frame.status == "failed" and retries.is_transient(frame.error)
             and frame.attempt < delivery.max_attempts)
    return await conn.lanes.report(reports.StatusReport.of(
        conn.principal, frame.id, frame.attempt, frame.to, frame.status, frame.error,
        retry=retry, reported_at=frame.at,
    ))


def _reply_ok(conn: DeviceConnection, ref: str | int | None) -> None:
    if ref is not None:
        conn.send(protocol.ok(ref))


def _reply_error(conn: DeviceConnection, ref: str | int | None, error: str) -> None:
    conn.send(protocol.error(error, ref))
