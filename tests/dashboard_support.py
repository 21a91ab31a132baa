"""Helpers shared by the dashboard tests: operators, logging in through the real form,
reading the hidden CSRF field out of a page, webhook rows in every health, and TLS and a
reverse proxy on real sockets."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from smsnodes_hub.appkeys import AUTH, POOL
from smsnodes_hub.auth import crypto
from smsnodes_hub.dashboard import operators
from tests.support import Certificate, self_signed

__all__ = ["Certificate", "self_signed"]  # re-exported: the dashboard tests import them here

HubFactory = Callable[..., Awaitable[TestClient]]


OPERATOR = "night-shift"
OPERATOR_PASSWORD = "watch the queues"


async def add_operator(client: TestClient, name: str = OPERATOR,
                       password: str = OPERATOR_PASSWORD) -> int:
    app = client.app
    return await operators.create(app[POOL], app[AUTH].kdf, app[AUTH].params, name, password)


def hidden(html: str, name: str = "csrf") -> str:
    match = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden {name} field in the page"
    return match.group(1)


def origin(client: TestClient) -> dict[str, str]:
    """The Origin header a browser sends with a form posted from the hub's own pages."""
    return {"Origin": str(client.make_url("")).rstrip("/")}


async def login(client: TestClient, name: str = OPERATOR, password: str = OPERATOR_PASSWORD,
                *, headers: dict[str, str] | None = None, **form: Any) -> Any:
    """Log in through the real login form (GET for its token and cookie, then POST), sent
    from the hub's own origin unless `headers` say otherwise."""
    page = await client.get("/dashboard/login")
    assert page.status == 200
    token = hidden(await page.text())
    return await client.post(
        "/dashboard/login", data={"csrf": token, "username": name, "password": password,
                                  **form},
        headers=origin(client) if headers is None else headers, allow_redirects=False,
    )


async def logged_in(client: TestClient) -> str:
    """Log in (creating the operator) and return the session's CSRF token."""
    await add_operator(client)
    resp = await login(client)
    assert resp.status == 303, await resp.text()
    page = await client.get("/dashboard")
    assert page.status == 200
    return hidden(await page.text())


# -- Webhook rows ---------------------------------------------------------------------------

WEBHOOK_SECRET_URL = "https://hooks.example.com/services/T0SECRET?sig=abc"
ATTEMPT_ERROR = f"POST {WEBHOOK_SECRET_URL}: 500"


@dataclass(frozen=True, slots=True)
class WebhookRows:
    failing: int  # active, failing for 80 hours
    disabled: int  # given up on by the hub
    healthy: int  # delivered a minute ago
    failed_deliveries: list[int]  # of `failing`, given up


async def add_webhook_rows(client: TestClient, device_id: int) -> WebhookRows:
    """Webhooks in each health as the delivery code leaves them (that code is another
    module's), with fixed times so every page shows the same thing on every run. The active
    ones subscribe to events the dashboard tests never cause, and their pending delivery is
    not due: the hub's own delivery worker leaves them as they are."""
    pool = client.app[POOL]
    account = await pool.fetchval("SELECT account_id FROM devices WHERE id = $1", device_id)
    secret = crypto.seal(crypto.new_data_key(), b"s", b"test")
    failing = await pool.fetchval(
        """INSERT INTO webhooks (account_id, url, events, secret, failing_since,
                                 last_success_at)
           VALUES ($1, $2, $3, $4, now() - interval '80 hours', now() - interval '81 hours')
           RETURNING id""",
        account, WEBHOOK_SECRET_URL, ["message.expired"], secret)
    disabled = await pool.fetchval(
        """INSERT INTO webhooks (account_id, url, events, secret, active, disabled_reason,
                                 failing_since)
           VALUES ($1, 'https://other.example/hook', $2, $3, false,
                   'no success for 72 hours', now() - interval '100 hours') RETURNING id""",
        account, ["sms.received"], secret)
    healthy = await pool.fetchval(
        """INSERT INTO webhooks (account_id, url, events, secret, last_success_at)
           VALUES ($1, 'https://fine.example/in', $2, $3, now() - interval '1 minute')
           RETURNING id""",
        account, ["message.expired"], secret)
    failed: list[int] = []
    for age, state in enumerate(("failed", "failed", "pending", "delivered")):
        delivery = await pool.fetchval(
            """INSERT INTO webhook_deliveries (webhook_id, account_id, event_id, event_type,
                                               state, attempts, created_at, next_attempt_at)
               VALUES ($1, $2, gen_random_uuid(), 'message.expired', $3, 2,
                       now() - make_interval(mins => 10 - $4), now() + interval '10 minutes')
               RETURNING id""",
            failing, account, state, age)
        await pool.execute(
            """INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms,
                                             status_code, error)
               VALUES ($1, 2, now() - interval '1 minute', 120, 500, $2)""",
            delivery, ATTEMPT_ERROR)
        if state == "failed":
            failed.append(delivery)
    return WebhookRows(failing, disabled, healthy, failed)


def element(html: str, element_id: str, tag: str = "tr") -> str:
    """The HTML of the `tag` element with this id (rows hold no nested element of their own
    tag, so the first closing tag ends it)."""
    match = re.search(rf'<{tag} id="{re.escape(element_id)}"[^>]*>.*?</{tag}>', html, re.S)
    assert match, f"no <{tag} id={element_id}> in the page"
    return match.group(0)


# -- TLS and a reverse proxy, on real sockets -----------------------------------------------


UPSTREAM = web.AppKey("upstream", URL)
PASS_HOST = web.AppKey("pass_host", bool)
SESSION = web.AppKey("proxy_session", aiohttp.ClientSession)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length",
              "content-encoding", "host", "upgrade"}


def reverse_proxy(upstream: URL, *, pass_host: bool) -> web.Application:
    """A TLS-terminating proxy in front of a hub, as nginx with `proxy_pass`: with
    `pass_host` it sends the browser's Host (`proxy_set_header Host $host`), without it the
    upstream's address (nginx's default)."""
    app = web.Application()
    app[UPSTREAM] = upstream
    app[PASS_HOST] = pass_host

    async def session(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(auto_decompress=False) as client:
            app[SESSION] = client
            yield

    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", _forward)
    return app


async def _forward(request: web.Request) -> web.Response:
    app = request.app
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    if app[PASS_HOST]:
        headers["Host"] = request.host
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-For"] = request.remote or ""
    async with app[SESSION].request(
        request.method, app[UPSTREAM].join(URL(request.path_qs)), headers=headers,
        data=await request.read(), allow_redirects=False,
    ) as answer:
        body = await answer.read()
        response = web.Response(status=answer.status, body=body)
        for name, value in answer.headers.items():
            if name.lower() not in HOP_BY_HOP:
                response.headers.add(name, value)
        return response
