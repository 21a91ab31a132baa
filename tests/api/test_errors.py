"""Every error reaches the client the same way: its documented status, `{"error", "code"}`
and headers, answered by the one middleware (api/errors.py) through the real app; a refused
request changes nothing; every /api route family answers its errors with a code; the docs
list every code."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from smsnodes_hub import errors
from smsnodes_hub.api.auth import AUTH_REQUIRED
from smsnodes_hub.api.body import TOO_LARGE
from smsnodes_hub.auth import tokens
from smsnodes_hub.device import store as devices
from smsnodes_hub.messaging import messages, phones, sending, withdrawal
from smsnodes_hub.webhooks import store as webhook_store
from smsnodes_hub.webhooks.errors import TooManyWebhooks, WebhookError
from tests.support import (
    NUMBER,
    PASSWORD,
    ROOT,
    HubFactory,
    add_device,
    basic,
    raw_request,
    until,
)

CODES = {cls.code: cls.status for cls in errors.ANSWERS}
PUBLIC = "https://93.184.216.34/hooks/sms"  # a public address literal: never contacted here
HOOK = {"url": PUBLIC, "events": ["sms.received"]}
SEND = {"deviceUsername": "phone-e", "password": PASSWORD, "phoneNumbers": [NUMBER],
        "message": "hello"}
SECRET_DETAIL = "the-detail-only-the-log-may-hold"


async def error_of(resp: ClientResponse) -> tuple[int, str, str]:
    """(status, error, code) of an error answer, after what holds for every one of them."""
    assert resp.content_type == "application/json", (resp.status, await resp.text())
    body = await resp.json()
    assert set(body) == {"error", "code"}, body
    assert isinstance(body["error"], str) and body["error"], body
    assert CODES.get(body["code"]) == resp.status, (resp.status, body)
    return resp.status, body["error"], body["code"]


async def snapshot(pool: asyncpg.Pool) -> dict[str, list[str]]:
    """Every row of every table of the hub, as text; but hub_processes, whose heartbeat the
    hub writes on a timer whatever the requests, and login_failures, where counting a wrong
    password is the whole effect of one (tests/auth/test_throttle.py)."""
    queries = await pool.fetch(
        "SELECT tablename, format('SELECT to_jsonb(t)::text FROM %I t ORDER BY 1', tablename)"
        "  AS query FROM pg_tables WHERE schemaname = 'public'"
        "  AND tablename NOT IN ('hub_processes', 'login_failures')")
    return {q["tablename"]: [r[0] for r in await pool.fetch(q["query"])] for q in queries}


@dataclass
class Case:
    what: str
    call: Callable[[TestClient], Awaitable[ClientResponse]]
    status: int
    error: str
    code: str
    headers: dict[str, str] = field(default_factory=dict)


def _send(**fields: Any) -> Callable[[TestClient], Awaitable[ClientResponse]]:
    return lambda hub: hub.post("/api/send-sms", json={**SEND, **fields})


CASES = [
    Case("a body that is not an object", lambda hub: hub.post(
        "/api/send-sms", data=b"[1]", headers={"Content-Type": "application/json"}),
        400, "Request body must be a JSON object", "invalid_request"),
    Case("a field of send-sms", _send(priority=9),
         400, "priority must be an integer from 1 to 5", "invalid_request"),
    Case("phones.InvalidNumber", _send(phoneNumbers=["call me"]),
         400, 'phoneNumbers[0]: invalid phone number "call me": use + and the country code '
              "(6 to 15 digits), or a short code of 3 to 8 digits; for national numbers such "
              "as 0612345678 set messaging.default_region", "invalid_request"),
    Case("webhooks.WebhookError", lambda hub: hub.post(
        "/api/webhooks", headers=basic("phone-e"), json={**HOOK, "url": "http://x.example"}),
        400, "url must use https:// (http:// needs webhooks.allow_http)", "invalid_request"),
    Case("a time off the calendar in UTC (found by tests/fuzz)",
         _send(scheduledAt="0001-01-01T00:00:00+01:00"), 400,
         "scheduledAt must be an ISO 8601 timestamp, e.g. 2026-11-21T10:00:00Z",
         "invalid_request"),
    Case("a time off the calendar in a query", lambda hub: hub.get(
        "/api/messages?until=9999-12-31T23:59:59-01:00", headers=basic("phone-e")),
        400, "until must be an ISO 8601 timestamp", "invalid_request"),
    Case("a page number of 5,000 digits (found by tests/fuzz)", lambda hub: hub.get(
        "/api/inbound?per_page=" + "9" * 5000, headers=basic("phone-e")),
        400, "per_page must be a whole number from 1 to 100", "invalid_request"),
    Case("a query parameter", lambda hub: hub.get(
        "/api/messages?status=lost", headers=basic("phone-e")),
        400, f"status must be one of {', '.join(messages.STATUSES)}", "invalid_request"),
    Case("no credentials", lambda hub: hub.get("/api/messages"),
         401, AUTH_REQUIRED, "unauthorized",
         {"WWW-Authenticate": 'Basic realm="smsnodes-hub"'}),
    Case("a wrong password", lambda hub: hub.get(
        "/api/messages", headers=basic("phone-e", "not the password")),
        401, "Invalid credentials", "unauthorized"),
    Case("a wrong password on send-sms", _send(password="not the password"),
         401, "Invalid credentials", "unauthorized"),
    Case("the seed's missing credentials", _send(password=""),
         400, "Username and password are required", "invalid_request"),
    Case("an unknown message", lambda hub: hub.get(
        "/api/messages/999", headers=basic("phone-e")),
        404, "Message 999 not found", "not_found"),
    Case("withdrawal.NotFound", lambda hub: hub.delete(
        "/api/messages/999", headers=basic("phone-e")),
        404, "Message 999 not found", "not_found"),
    Case("an id that is no number", lambda hub: hub.get(
        "/api/webhooks/x1", headers=basic("phone-e")),
        404, "Webhook x1 not found", "not_found"),
    Case("an unknown /api path", lambda hub: hub.get("/api/nowhere"),
         404, "Not found", "not_found"),
    Case("a wrong method", lambda hub: hub.put("/api/health", data=b"{}"),
         405, "Method not allowed", "method_not_allowed"),
    Case("a body that does not match its Content-Encoding (found by tests/fuzz)",
         lambda hub: hub.post("/api/webhooks", data=b"{}", headers={
             **basic("phone-e"), "Content-Type": "application/json",
             "Content-Encoding": "gzip", "Connection": "close"}),
         400, "Request body cannot be read: Can not decode content-encoding: gzip",
         "invalid_request"),
    Case("a body over 64 KiB", lambda hub: hub.post(
        "/api/webhooks", headers={**basic("phone-e"), "Content-Type": "application/json"},
        data=b'{"url": "' + b"u" * (64 * 1024) + b'"}'),
        413, TOO_LARGE, "body_too_large"),
]


async def test_every_error_reaches_the_client_as_documented(
    hub: TestClient, pool: asyncpg.Pool
) -> None:
    await add_device(hub, "phone-e")
    before = await snapshot(pool)
    assert len(before["devices"]) == 1  # the snapshot sees the rows
    for case in CASES:
        resp = await case.call(hub)
        assert await error_of(resp) == (case.status, case.error, case.code), case.what
        for name, value in case.headers.items():
            assert resp.headers.get(name) == value, (case.what, name)
    assert "GET" in (await hub.put("/api/health", data=b"{}")).headers["Allow"]
    # None of them changed anything.
    assert await snapshot(pool) == before


async def test_a_malformed_request_is_one_line_in_the_log_not_a_traceback(
    hub: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp's parser answers what is not HTTP (here a control byte in a header, and a
    body nobody reads that does not inflate) itself, and would log a traceback at ERROR for
    each: anybody could fill the log so (found by tests/fuzz)."""
    await add_device(hub, "phone-e")
    assert hub.server.port is not None
    caplog.set_level(logging.INFO)
    bad_header = await raw_request("127.0.0.1", hub.server.port, b"GET /api/health HTTP/1.1"
                                   b"\r\nHost: hub\r\nX-Trace: a\x01b", b"")
    assert bad_header is not None and bad_header.status == 400
    unread = await raw_request("127.0.0.1", hub.server.port, b"DELETE /api/messages/1 HTTP/1.1"
                               b"\r\nHost: hub\r\nConnection: close\r\nAuthorization: "
                               + basic("phone-e")["Authorization"].encode()
                               + b"\r\nContent-Encoding: gzip\r\nContent-Length: 2", b"{}")
    assert unread is not None and unread.status == 404
    await until(lambda: sum("malformed request" in r.getMessage() for r in caplog.records) == 2)
    for record in caplog.records:
        assert record.levelno < logging.ERROR and not record.exc_info, record.getMessage()


async def test_conflicts_are_409(
    hub: TestClient, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_device(hub, "phone-e")
    auth = basic("phone-e")
    sent = await (await _send()(hub)).json()
    cancel = f"/api/messages/{sent['messageId']}"
    assert (await hub.delete(cancel, headers=auth)).status == 200
    monkeypatch.setattr(webhook_store, "MAX_WEBHOOKS", 1)
    monkeypatch.setattr(tokens, "MAX_API_TOKENS", 1)
    assert (await hub.post("/api/webhooks", headers=auth, json=HOOK)).status == 201
    assert (await hub.post("/api/tokens", headers=auth, json={})).status == 201
    key = {"Idempotency-Key": "k-1"}
    assert (await hub.post("/api/send-sms", headers=key, json=SEND)).status == 200
    before = await snapshot(pool)

    resp = await hub.delete(cancel, headers=auth)  # withdrawal.NothingToCancel
    assert await error_of(resp) == (409, f"Message {sent['messageId']} cannot be cancelled: "
                                         "it is already cancelled", "conflict")
    resp = await hub.post("/api/webhooks", headers=auth, json=HOOK)  # TooManyWebhooks
    assert await error_of(resp) == (
        409, "an account has at most 1 webhooks: delete one first", "conflict")
    resp = await hub.post("/api/tokens", headers=auth, json={})  # tokens.TokenError
    assert await error_of(resp) == (
        409, "cannot create a token: the credentials changed, or the device has 1 tokens "
             "already (revoke some)", "conflict")
    resp = await hub.post("/api/send-sms", headers=key, json={**SEND, "message": "other"})
    assert await error_of(resp) == (
        409, "Idempotency-Key was already used with a different request", "conflict")
    assert await snapshot(pool) == before


async def test_rate_limits_are_429_with_retry_after(make_hub: HubFactory) -> None:
    hub = await make_hub(SMSNODES_SECURITY_LOGIN_MAX_FAILURES="1",
                         SMSNODES_LIMITS_SEND_PER_MINUTE="1")
    await add_device(hub, "phone-e")
    assert (await _send()(hub)).status == 200
    resp = await _send()(hub)  # the account's send budget is spent
    assert await error_of(resp) == (429, "Rate limit exceeded", "rate_limited")
    assert 0 < int(resp.headers["Retry-After"]) <= 60
    assert resp.headers["X-RateLimit-Remaining"] == "0"

    wrong = basic("phone-e", "not the password")
    assert (await hub.get("/api/device", headers=wrong)).status == 401
    resp = await hub.get("/api/device", headers=wrong)  # the address is locked out
    assert await error_of(resp) == (429, "Rate limit exceeded", "rate_limited")
    assert int(resp.headers["Retry-After"]) >= 1


@pytest.mark.parametrize(("raised", "status", "error", "code"), [
    (RuntimeError(SECRET_DETAIL), 500, "Internal server error", "internal_error"),
    (asyncpg.exceptions.CheckViolationError(SECRET_DETAIL), 500, "Database error",
     "internal_error"),
    (ConnectionRefusedError(SECRET_DETAIL), 503, "Database unavailable", "unavailable"),
])
async def test_unexpected_failures_leak_nothing(
    hub: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    raised: Exception, status: int, error: str, code: str,
) -> None:
    await add_device(hub, "phone-e")

    async def broken(*args: Any) -> None:
        raise raised

    monkeypatch.setattr(devices, "describe", broken)
    resp = await hub.get("/api/device", headers=basic("phone-e"))
    assert await error_of(resp) == (status, error, code)
    assert SECRET_DETAIL not in await resp.text()
    assert SECRET_DETAIL in caplog.text  # the detail is in the server's log
    if status == 503:
        assert resp.headers["Retry-After"] == "5"


async def test_credentials_changed_is_401_and_forgets_the_login(
    hub: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_device(hub, "phone-e")
    assert (await _send()(hub)).status == 200  # the login is cached now

    async def stale(*args: Any) -> None:
        raise sending.CredentialsChanged

    monkeypatch.setattr("smsnodes_hub.api.send_sms.submit", stale)
    resp = await _send()(hub)
    assert await error_of(resp) == (401, "Invalid credentials", "unauthorized")
    assert "X-RateLimit-Limit" in resp.headers
    monkeypatch.undo()
    assert (await _send()(hub)).status == 200  # logs in afresh


def test_domain_errors_are_hub_errors() -> None:
    """The domain's errors that cross the HTTP API, with the answer each one gets."""
    assert issubclass(withdrawal.NotFound, errors.NotFound)
    assert issubclass(withdrawal.NothingToCancel, errors.Conflict)
    assert issubclass(sending.CredentialsChanged, errors.Unauthorized)
    assert issubclass(tokens.TokenError, errors.Conflict)
    assert issubclass(WebhookError, errors.InvalidRequest)
    assert TooManyWebhooks.status == 409 and issubclass(TooManyWebhooks, WebhookError)
    assert issubclass(phones.InvalidNumber, errors.InvalidRequest)
    assert issubclass(phones.InvalidNumber, ValueError)  # the device protocol catches it so


async def test_every_api_route_family_answers_errors_with_a_code(hub: TestClient) -> None:
    """Walk the app's routes: without credentials (or, where none are needed, with a wrong
    method) every /api route answers an error with a code."""
    families: dict[str, set[str]] = {}
    routes = [(r.method, r.resource.canonical) for r in hub.app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/api/")
              and r.method != "HEAD"]
    assert len(routes) >= 18
    for method, template in routes:
        path = template.replace("{id}", "1")
        resp = await hub.request(method, path, json={})
        if resp.status < 400:  # open to all: a method it does not take
            resp = await hub.request("PATCH", path, json={})
        _, _, code = await error_of(resp)
        families.setdefault(path.split("/")[2], set()).add(code)
    assert set(families) == {"health", "send-sms", "messages", "tokens", "device", "devices",
                             "quota", "inbound", "webhooks", "openapi.json"}
    assert all(families.values())


def test_the_docs_list_every_code() -> None:
    text = (ROOT / "docs" / "http-api.md").read_text()
    section = text.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    listed = dict(re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", section, re.MULTILINE))
    assert {code: int(status) for code, status in listed.items()} == CODES

