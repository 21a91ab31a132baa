"""Generated WebSocket frames, before and after authentication: auth frames with every kind
of wrong field, frames of every type with wrong types and hostile values, acks and status
reports for unknown ids and for the other account's ids, huge and deeply nested JSON,
binary frames, text frames that are not UTF-8, NUL bytes.

For every one: no traceback in the log; the hub never closes with 1011 or 1013 (a failure
of its own); a frame that is not a JSON object of at most 64 KiB in UTF-8 closes the socket
with the documented code (4400, 1009, 1007) and any other leaves it usable (a probe frame
after it is answered); every reply is a well-formed `ok` or `error`; a frame answered with
`error` writes no row; and the phone is never sent the other account's messages."""

from __future__ import annotations

import contextlib
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from hypothesis import given, note
from hypothesis import strategies as st

from tests.fuzz.harness import FuzzHub, examples
from tests.fuzz.strategies import (
    LIMIT,
    NUL,
    anything_or,
    broken_body,
    encode,
    json_values,
    texts,
    timestamps,
)
from tests.support import NUMBER, PASSWORD, until

pytestmark = pytest.mark.asyncio(loop_scope="module")

FATAL_CLOSES = {4400, 1007, 1009}  # not JSON, not UTF-8, too large (PROTOCOL.md, RFC 6455)
PROBE = "fuzz-probe"  # an unknown frame type: answered inline with an `error`
PROBE_ID = 2**62  # an ack for a message that does not exist: answered through the lane
REPLY_TIMEOUT = 15.0



def ids(hub: FuzzHub) -> st.SearchStrategy[Any]:
    return anything_or(hub.mine.message_id, hub.theirs.message_id, hub.theirs.message_id, 0,
                       -1, 2**62, 2**62 + 1, 2**63, 10**30, 1.5, "1", True)


attempts = anything_or(1, 1, 2, 0, -1, 2**62, 2**63, 1.0, "1", None)
refs = st.one_of(st.none(), st.none(), st.none(), anything_or(
    "", "x" * 200, "x" * 201, 0, -1, 2**63, 2**64, 1.5, True, [], f"r{NUL}", "\ud800"))


def frames(hub: FuzzHub) -> st.SearchStrategy[dict[str, Any]]:
    """Frames a phone might send after auth, each field plausible or hostile."""
    def kind(name: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({"type": anything_or(name)},
                                     optional={"ref": refs, **fields})

    return st.one_of(
        kind("ack", id=ids(hub), attempt=attempts),
        kind("status", id=ids(hub), attempt=attempts,
             to=anything_or(NUMBER, NUMBER, "+15550002", "123", "call me", f"+1{NUL}"),
             status=anything_or("sent", "delivered", "failed", "queued", "SENT"),
             at=timestamps, error=anything_or("RESULT_ERROR_NO_SERVICE", "x" * 201, "")),
        kind("inbound", **{"from": anything_or("+15550001", "AMAZON", " ", "x" * 101, "\n"),
                           "message": anything_or("STOP", "", "x" * 10_001, "é" * 500),
                           "receivedAt": timestamps}),
        kind("heartbeat", battery=anything_or(87, 0, 100, 101, -1, 50.5),
             charging=anything_or(True, False, 1, "yes"), signal=anything_or(3, -200, 201, -1)),
        kind("auth", username=anything_or(hub.mine.username), password=anything_or(PASSWORD)),
        st.dictionaries(texts, json_values, max_size=4),
    )


def auth_frames(hub: FuzzHub) -> st.SearchStrategy[dict[str, Any]]:
    me, them = hub.mine, hub.theirs
    return st.fixed_dictionaries({"type": anything_or("auth", "auth", "ack", "AUTH")}, optional={
        "username": anything_or(me.username, them.username, "nobody", f"{me.username}{NUL}",
                                "", me.username.upper()),
        "password": anything_or(PASSWORD, "wrong", f"{PASSWORD}{NUL}", "", PASSWORD + " "),
        "token": anything_or(me.session_token, them.session_token, me.api_token, "snh_",
                             f"snh_{NUL}", "snh_\ud800", "x" * 300),
        "device": anything_or({"model": "Pixel 7", "app": "1.4.2", "sims": 2},
                              {"model": f"P{NUL}", "app": "x" * 1000, "sims": 2**40}, "Pixel"),
    })


@st.composite
def wire(draw: st.DrawFn, frame: st.SearchStrategy[dict[str, Any]]) -> tuple[WSMsgType, bytes]:
    """(opcode, payload): mostly the frame as JSON text, else anything but."""
    valid = encode(draw(frame), draw(st.booleans()))
    roll = draw(st.integers(0, 13))
    if roll == 0:
        return WSMsgType.BINARY, draw(st.sampled_from([valid, b"", b"\x00\xff"]))
    if roll == 1:
        return WSMsgType.TEXT, b'{"type": "heartbeat", "pad": "' + b"x" * LIMIT + b'"}'
    if roll <= 3:
        return WSMsgType.TEXT, draw(broken_body(valid))
    return WSMsgType.TEXT, valid


def allowed_open(opcode: WSMsgType, payload: bytes) -> bool:
    """Whether the contract lets this frame leave the socket open (and requires it to)."""
    if opcode != WSMsgType.TEXT or len(payload) > LIMIT:
        return False
    try:
        payload.decode("utf-8")
        return isinstance(orjson.loads(payload), dict)
    except (UnicodeDecodeError, orjson.JSONDecodeError):
        return False


def check_reply(hub: FuzzHub, frame: dict[str, Any]) -> None:
    kind = frame.get("type")
    if kind in ("ok", "error"):
        assert set(frame) <= {"type", "ref", "error"}, frame
        assert kind == "ok" or (isinstance(frame.get("error"), str) and frame["error"]), frame
    elif kind == "sms":
        assert frame["id"] != hub.theirs.message_id, f"sent another account's message: {frame}"
    elif kind != "cancel":
        raise AssertionError(f"unexpected frame from the hub: {frame}")


async def close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    while True:
        msg = await ws.receive(timeout=REPLY_TIMEOUT)
        if msg.type == WSMsgType.CLOSE:
            return int(msg.data)
        if msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
            return ws.close_code


@examples("test_first_frames")
@given(data=st.data())
async def test_first_frames(fuzz_hub: FuzzHub, data: st.DataObject) -> None:
    hub = fuzz_hub
    opcode, payload = data.draw(wire(auth_frames(hub)), label="first frame")
    note(f"{opcode.name} {payload[:600]!r}")
    before = await hub.marks()
    ws = await hub.client.ws_connect("/ws/device", max_msg_size=0)
    try:
        await ws.send_frame(payload, opcode)
        msg = await ws.receive(timeout=REPLY_TIMEOUT)
        if msg.type == WSMsgType.TEXT:
            reply = orjson.loads(msg.data)
            if reply["type"] == "auth_ok":
                assert reply["deviceId"] in (hub.mine.device_id, hub.theirs.device_id), reply
                hub.count("ws first frame: auth_ok")
                await ws.close()
                await hub.hung_up(reply["deviceId"])
                return
            assert reply["type"] == "auth_failed", reply
            assert reply["error"] in ("Invalid credentials", "Too many attempts"), reply
            code = await close_code(ws)
            assert code == (4401 if reply["error"] == "Invalid credentials" else 4429), code
        else:
            assert msg.type == WSMsgType.CLOSE, msg
            code = int(msg.data)
            assert code in FATAL_CLOSES and not allowed_open(opcode, payload), code
        hub.count(f"ws first frame: close {code}")
    finally:
        await ws.close()
        hub.no_tracebacks("first frame")
    await hub.unchanged_since(before, "a refused first frame")


class Phone:
    """The fuzzer's phone after auth, across examples; logged in again when a frame closed
    its socket."""

    def __init__(self) -> None:
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def socket(self, hub: FuzzHub) -> aiohttp.ClientWebSocketResponse:
        if self.ws is None or self.ws.closed:
            await hub.hung_up(hub.mine.device_id)
            ws = await hub.client.ws_connect("/ws/device", max_msg_size=0)
            await ws.send_json({"type": "auth", "username": hub.mine.username,
                                "password": PASSWORD})
            frame = await ws.receive_json(timeout=REPLY_TIMEOUT)
            assert frame["type"] == "auth_ok", frame
            self.ws = ws
            # What waited in the queue is claimed for the new socket (a write of its own).
            await until(lambda: self._nothing_queued(hub), message="the queue was not sent")
        return self.ws

    @staticmethod
    async def _nothing_queued(hub: FuzzHub) -> bool:
        return not await hub.pool.fetchval(
            "SELECT count(*) FROM messages WHERE device_id = $1 AND state = 'queued'",
            hub.mine.device_id)


@pytest.fixture(scope="module")
def phone() -> Phone:
    return Phone()


@examples("test_frames_after_auth")
@given(data=st.data())
async def test_frames_after_auth(fuzz_hub: FuzzHub, phone: Phone, data: st.DataObject) -> None:
    hub = fuzz_hub
    ws = await phone.socket(hub)
    frame = data.draw(frames(hub), label="frame")
    ours = None
    if "ref" not in frame and data.draw(st.booleans(), label="with a ref"):
        ours = frame["ref"] = hub.next_ref()
    opcode, payload = data.draw(wire(st.just(frame)), label="wire")
    if ours is not None and not (allowed_open(opcode, payload)
                                 and orjson.loads(payload).get("ref") == ours):
        ours = None  # the frame sent is not the one drawn
    note(f"{opcode.name} {payload[:600]!r}")
    probe, lane = hub.next_ref(), hub.next_ref()
    before = await hub.marks()
    try:
        await ws.send_frame(payload, opcode)
    except aiohttp.ClientConnectionResetError:
        # The hub closed the socket after it answered the last example (its close frame is
        # still unread): say why, and go on with a new socket next time.
        code = await close_code(ws)
        assert code not in (1011, 1013, None), f"closed between frames with {code}"
        hub.count(f"ws after auth: closed between frames {code}")
        await ws.close()
        return
    for after in ({"type": PROBE, "ref": probe}, {"type": "ack", "id": PROBE_ID, "ref": lane}):
        # A frame that breaks the framing may have closed the socket already: its close
        # frame is read below.
        with contextlib.suppress(aiohttp.ClientConnectionResetError):
            await ws.send_json(after)
    waiting = {probe, lane} | ({ours} if ours else set())
    answer = None
    seen: list[Any] = []
    while waiting:
        try:
            msg = await ws.receive(timeout=REPLY_TIMEOUT)
        except TimeoutError:
            raise AssertionError(f"no answer for {waiting}; got {seen}") from None
        seen.append((msg.type.name, str(msg.data)[:200]))
        if msg.type != WSMsgType.TEXT:
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING), msg
            code = int(msg.data) if msg.type == WSMsgType.CLOSE else ws.close_code
            note(f"closed with {code}")
            assert code in FATAL_CLOSES, f"closed with {code}"
            assert not allowed_open(opcode, payload), f"a valid frame closed the socket: {code}"
            hub.count(f"ws after auth: close {code}")
            await ws.close()
            break
        reply = orjson.loads(msg.data)
        check_reply(hub, reply)
        if reply.get("ref") in waiting:
            waiting.discard(reply["ref"])
            if reply["ref"] == ours:
                answer = reply
    else:
        assert allowed_open(opcode, payload), "a frame that breaks the framing left it open"
        kind = frame.get("type")
        kind = kind if kind in ("ack", "status", "inbound", "heartbeat", "auth") else "other"
        hub.count(f"ws after auth: {kind} {answer['type'] if answer else '(no ref)'}")
    hub.no_tracebacks(f"frame {payload[:200]!r}")
    if answer is not None and answer["type"] == "error":
        await hub.unchanged_since(before, f"frame {payload[:200]!r}")
