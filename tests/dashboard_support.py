"""Helpers shared by the dashboard tests: operators, logging in through the real form, and
reading the hidden CSRF field out of a page."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from smsnodes_hub.appkeys import AUTH, POOL
from smsnodes_hub.dashboard import operators

HubFactory = Callable[..., Awaitable[TestClient]]


def key_file_in(make_hub: HubFactory, folder: Path) -> HubFactory:
    """make_hub with database.data_dir in the test's own folder: the dashboard's session key
    file is made there, never in the repository's var/. Used by the dashboard test modules
    to override `make_hub`."""

    async def start(**env: str) -> TestClient:
        env.setdefault("SMSNODES_DATABASE_DATA_DIR", str(folder / "data"))
        return await make_hub(**env)

    return start


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
                **form: Any) -> Any:
    """Log in through the real login form (GET for its token and cookie, then POST)."""
    page = await client.get("/dashboard/login")
    assert page.status == 200
    token = hidden(await page.text())
    return await client.post(
        "/dashboard/login", data={"csrf": token, "username": name, "password": password,
                                  **form},
        headers=origin(client), allow_redirects=False,
    )


async def logged_in(client: TestClient) -> str:
    """Log in (creating the operator) and return the session's CSRF token."""
    await add_operator(client)
    resp = await login(client)
    assert resp.status == 303, await resp.text()
    page = await client.get("/dashboard")
    assert page.status == 200
    return hidden(await page.text())
