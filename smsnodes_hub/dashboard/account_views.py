"""Dashboard: accounts with several phones, and one account's page (its phones with online
state, queue, in flight, sent today, battery and signal; its pool; its quota as bars)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from smsnodes_hub.dashboard import account_queries
from smsnodes_hub.dashboard.pages import (
    DEVICE_LIST_LIMIT,
    not_found,
    path_id,
    pool_of,
    render,
)
from smsnodes_hub.device.sessions import PROCESS_STALE


async def account_list(request: web.Request) -> web.Response:
    rows = await account_queries.list_accounts(pool_of(request), PROCESS_STALE,
                                               DEVICE_LIST_LIMIT)
    return render(request, "accounts.html", accounts=rows, limit=DEVICE_LIST_LIMIT)


async def account_list_fragment(request: web.Request) -> web.Response:
    rows = await account_queries.list_accounts(pool_of(request), PROCESS_STALE,
                                               DEVICE_LIST_LIMIT)
    return render(request, "_accounts.html", accounts=rows, limit=DEVICE_LIST_LIMIT)


async def _account(request: web.Request) -> dict[str, Any] | None:
    pool = pool_of(request)
    account_id = path_id(request)
    account = await account_queries.get_account(pool, PROCESS_STALE, account_id)
    if account is None:
        return None
    phones = await account_queries.account_phones(pool, PROCESS_STALE, account_id)
    return {"account": account, "phones": phones}


async def account_page(request: web.Request) -> web.Response:
    found = await _account(request)
    if found is None:
        return not_found(request, "account")
    return render(request, "account.html", **found)


async def account_fragment(request: web.Request) -> web.Response:
    found = await _account(request)
    if found is None:
        raise web.HTTPNotFound(text="No such account")
    return render(request, "_account.html", **found)
