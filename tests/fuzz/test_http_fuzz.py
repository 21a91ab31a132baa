"""Generated requests to every /api route of the app's route table, sent as raw bytes: bodies
of every shape and size (not JSON, not UTF-8, NUL bytes, nested, over 64 KiB, 10,000
recipients, numbers beyond 64 bits), query strings and path ids (the other account's ids
too), credentials of every kind, and headers a client library would not send.

For every one: never a 5xx, never a traceback in the log, every error in the documented
`{"error", "code"}` body with its status, and a refused request writes no row. A request
with this account's credentials that names the other account's id never succeeds."""

from __future__ import annotations

import base64
import gzip
import itertools
import zlib
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from tests.fuzz.harness import FuzzHub, Reply, error_code, examples
from tests.fuzz.strategies import (
    LIMIT,
    PACING_FIELDS,
    QUERY_VALUES,
    TOKEN_FIELDS,
    WEBHOOK_FIELDS,
    WEBHOOK_PATCH_FIELDS,
    body_for,
    send_fields,
    texts,
)
from tests.support import PASSWORD

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONTENT_TYPES = [b"application/json", b"application/json; charset=utf-8", b"text/plain",
                 b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x",
                 b"application/json; charset=latin-1", b"*/*", b";;;", b"\xff\xfe"]
PATH_GARBAGE = ["0", "-1", "00", "1.0", "+1", "%201", "1%00", "%00", "%ff", "%F0%9F%92%A5",
                "%C2%B9", "abc", "9" * 18, "9" * 19, "9" * 400, "1e3", "0x10", "%2e%2e"]
SEND = "/api/send-sms"
_unique = itertools.count()



def api_routes(hub: FuzzHub) -> list[tuple[str, str]]:
    """(method, path template) of every /api route, HEAD left out (GET answers it)."""
    return sorted({(r.method, r.resource.canonical) for r in hub.client.app.router.routes()
                   if r.resource is not None and r.resource.canonical.startswith("/api/")
                   and r.method != "HEAD"})


def body_fields(hub: FuzzHub, method: str, path: str) -> dict[str, st.SearchStrategy[Any]]:
    fields: dict[tuple[str, str], dict[str, st.SearchStrategy[Any]]] = {
        ("POST", SEND): send_fields(hub.mine.username, PASSWORD),
        ("POST", "/api/tokens"): TOKEN_FIELDS,
        ("PUT", "/api/device/pacing"): PACING_FIELDS,
        ("POST", "/api/webhooks"): WEBHOOK_FIELDS,
        ("PATCH", "/api/webhooks/{id}"): WEBHOOK_PATCH_FIELDS,
    }
    return fields.get((method, path), {"x": texts})


def _b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


def credentials(hub: FuzzHub) -> st.SearchStrategy[bytes | None]:
    """Authorization values: this account's every kind, the other account's, and junk."""
    me, them = hub.mine, hub.theirs
    good = [b"Basic " + _b64(f"{me.username}:{PASSWORD}".encode()),
            b"Bearer " + me.api_token.encode()]
    return st.one_of(st.sampled_from(good), st.sampled_from(good), st.sampled_from([
        None, b"Basic " + _b64(f"{me.username}:wrong".encode()),
        b"Basic " + _b64(f"{them.username}:{PASSWORD}".encode()),
        b"Bearer " + me.session_token.encode(), b"Bearer " + them.api_token.encode(),
        b"Basic " + _b64(b"\xff\xfe:\x00"), b"Basic " + _b64(f"{me.username}".encode()),
        b"Basic " + _b64(f":{PASSWORD}".encode()), b"Basic !!!", b"Basic", b"Bearer",
        b"Bearer snh_", b"Bearer snh_\xff", b"bearer " + me.api_token.encode() + b"x",
        b"Digest x", b"", b"Basic " + b"QQ==" * 3000,
    ]), st.binary(max_size=60).map(lambda raw: b"Bearer " + raw.replace(b"\r", b"")
                                   .replace(b"\n", b"").replace(b"\x00", b"")))


def path_ids(hub: FuzzHub, path: str) -> st.SearchStrategy[tuple[str, bool]]:
    """(segment, names the other account's thing) for the `{id}` of `path`."""
    me, them = hub.mine, hub.theirs
    if path.startswith("/api/messages/"):
        mine, theirs = [me.message_id], [them.message_id]
    elif path.startswith("/api/inbound/"):
        mine, theirs = [me.inbound_id], [them.inbound_id]
    elif path.startswith("/api/webhooks/"):
        mine, theirs = [me.webhook_id], [them.webhook_id]
    else:  # tokens: never this account's own, or the fuzzer would revoke its credentials
        mine, theirs = [], [them.api_token_id, them.session_token_id]
    return st.one_of(
        st.sampled_from([(str(i), False) for i in mine] or [("999999", False)]),
        st.sampled_from([(str(i), True) for i in theirs]),
        st.sampled_from([(g, False) for g in PATH_GARBAGE]),
        texts.map(lambda t: (quote(t.encode("utf-8", "surrogatepass"), safe=""), False)),
    )


@st.composite
def query_strings(draw: st.DrawFn) -> bytes:
    pairs = draw(st.lists(st.one_of(
        st.sampled_from(sorted(QUERY_VALUES)).flatmap(
            lambda k: st.tuples(st.just(k), QUERY_VALUES[k])),
        st.tuples(texts, texts),
    ), max_size=4))
    encoded = [quote(k.encode("utf-8", "surrogatepass"), safe="") + "="
               + quote(v.encode("utf-8", "surrogatepass"), safe="") for k, v in pairs]
    junk = draw(st.sampled_from(["", "", "", "&", "%", "%zz", "%ff%fe", "a", "==", "&=&"]))
    query = "&".join([*encoded, junk] if junk else encoded)
    return ("?" + query).encode() if query else b""


def head(hub: FuzzHub, method: str, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    lines = [method.encode() + b" " + target + b" HTTP/1.1",
             f"Host: {hub.host}:{hub.port}".encode(), b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines)


def chunked(body: bytes) -> bytes:
    pieces = [body[i:i + 4096] for i in range(0, len(body), 4096)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


async def exchange(hub: FuzzHub, method: str, path: str, target: bytes,
                   headers: list[tuple[bytes, bytes]], body: bytes, *, foreign: bool,
                   malformed: bool = False, use_chunks: bool = False) -> Reply | None:
    """Send one request and check every invariant; `malformed` when the request is not
    valid HTTP (aiohttp's parser may answer it before the hub sees it)."""
    if use_chunks:
        headers = [*headers, (b"Transfer-Encoding", b"chunked")]
        payload = chunked(body)
    else:
        headers = [*headers, (b"Content-Length", str(len(body)).encode())]
        payload = body
    raw_head = head(hub, method, target, headers)
    note(f"request head: {raw_head[:600]!r}")
    note(f"request body ({len(body)} bytes): {body[:600]!r}")
    before = await hub.marks()
    answer = await hub.request(raw_head, payload)
    what = f"{method} {path}"
    hub.no_tracebacks(what)
    if answer is None:
        # Only a request refused before it was read may end so: too large, or not HTTP.
        assert malformed or len(body) > LIMIT, f"{what}: connection reset without an answer"
        hub.count(f"http {what} (reset before an answer)")
        await hub.unchanged_since(before, what)
        return None
    reply = answer
    note(f"answer: {reply.status} {reply.body[:400]!r}")
    assert reply.status < 500, (reply.status, reply.body[:500])
    if reply.status >= 400:
        if malformed and reply.headers.get("content-type", "").startswith("text/plain"):
            hub.count(f"http {what} {reply.status} (refused by the HTTP parser)")
        else:
            hub.count(f"http {what} {reply.status} {error_code(reply)}")
        await hub.unchanged_since(before, what)
    else:
        assert reply.headers.get("content-type", "").startswith("application/json"), reply
        reply.json()
        hub.count(f"http {what} {reply.status}")
    if foreign:
        assert reply.status >= 400, f"{what} with another account's id answered {reply.status}"
    return reply


@examples("test_bodies")
@given(data=st.data())
async def test_bodies(fuzz_hub: FuzzHub, data: st.DataObject) -> None:
    hub = fuzz_hub
    routes = [r for r in api_routes(hub) if r[0] in ("POST", "PUT", "PATCH")]
    method, path = data.draw(st.sampled_from(routes), label="route")
    segment, foreign = data.draw(path_ids(hub, path)) if "{id}" in path else ("", False)
    body = data.draw(body_for(body_fields(hub, method, path)), label="body")
    headers: list[tuple[bytes, bytes]] = []
    auth = data.draw(credentials(hub), label="authorization")
    if auth is not None:
        headers.append((b"Authorization", auth))
    content_type = data.draw(st.one_of(st.none(), st.sampled_from(CONTENT_TYPES)))
    if content_type is not None:
        headers.append((b"Content-Type", content_type))
    if path == SEND:
        key = data.draw(st.one_of(st.none(), st.sampled_from([
            f"k-{next(_unique)}", hub.mine.idempotency_key, hub.theirs.idempotency_key,
            "", " ", "\u00e9", "x" * 256]).map(str.encode), st.binary(max_size=20)
            .filter(lambda b: not set(b) & {0, 10, 13})), label="idempotency key")
        if key is not None:
            headers.append((b"Idempotency-Key", key))
    target = path.replace("{id}", segment).encode()
    await exchange(hub, method, path, target, headers, body,
                   foreign=foreign and auth is not None and _mine(hub, auth),
                   malformed=True, use_chunks=data.draw(st.integers(0, 7)) == 0)


@examples("test_queries_and_ids")
@given(data=st.data())
async def test_queries_and_ids(fuzz_hub: FuzzHub, data: st.DataObject) -> None:
    hub = fuzz_hub
    routes = [r for r in api_routes(hub) if r[0] in ("GET", "DELETE")]
    method, path = data.draw(st.sampled_from(routes), label="route")
    segment, foreign = data.draw(path_ids(hub, path)) if "{id}" in path else ("", False)
    auth = data.draw(credentials(hub), label="authorization")
    headers = [] if auth is None else [(b"Authorization", auth)]
    target = path.replace("{id}", segment).encode() + data.draw(query_strings())
    await exchange(hub, method, path, target, headers, b"",
                   foreign=foreign and auth is not None and _mine(hub, auth), malformed=True)


HEADER_NAMES = [b"X-Forwarded-For", b"Origin", b"Cookie", b"Accept", b"Accept-Encoding",
                b"Idempotency-Key", b"Content-Type", b"Authorization", b"X-Real-IP",
                b"Range", b"If-None-Match", b"Upgrade", b"Sec-WebSocket-Key", b"X-\xff"]


def compressed(body: bytes, encoding: bytes) -> bytes:
    if encoding == b"gzip":
        return gzip.compress(body)
    if encoding == b"deflate":
        return zlib.compress(body)
    return body


@examples("test_headers")
@given(data=st.data())
async def test_headers(fuzz_hub: FuzzHub, data: st.DataObject) -> None:
    """Odd headers on any route: arbitrary bytes (NUL and 8-bit too), repeated ones, and
    Content-Encoding that does not match the body (or a small gzip that inflates past the
    limit)."""
    hub = fuzz_hub
    method, path = data.draw(st.sampled_from(api_routes(hub)), label="route")
    segment, _ = data.draw(path_ids(hub, path)) if "{id}" in path else ("", False)
    me = hub.mine
    headers = [(b"Authorization", b"Basic " + _b64(f"{me.username}:{PASSWORD}".encode()))]
    headers += data.draw(st.lists(st.tuples(
        st.one_of(st.sampled_from(HEADER_NAMES), st.binary(min_size=1, max_size=12)),
        st.binary(max_size=80)).map(lambda kv: (
            kv[0].replace(b"\r", b"").replace(b"\n", b"").replace(b":", b"") or b"X",
            kv[1].replace(b"\r", b"").replace(b"\n", b""))), max_size=4), label="headers")
    body = data.draw(body_for(body_fields(hub, method, path)), label="body")
    encoding = data.draw(st.sampled_from([None, b"gzip", b"deflate", b"br", b"x"]))
    if encoding is not None:
        headers.append((b"Content-Encoding", encoding))
        kind = data.draw(st.sampled_from(["matching", "raw", "bomb"]))
        if kind == "matching":
            body = compressed(body, encoding)
        elif kind == "bomb":
            body = compressed(b'{"message": "' + b"x" * (1 << 20) + b'"}', encoding)
    target = path.replace("{id}", segment).encode()
    await exchange(hub, method, path, target, headers, body, foreign=False, malformed=True)


def _mine(hub: FuzzHub, auth: bytes) -> bool:
    """The Authorization value logs in as this account (so another's id must be refused)."""
    me = hub.mine
    return auth in (b"Basic " + _b64(f"{me.username}:{PASSWORD}".encode()),
                    b"Bearer " + me.api_token.encode())
