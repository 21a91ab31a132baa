"""Dashboard: the message search, one message's page, and cancelling a message."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from typing import Any

from aiohttp import web

from smsnodes_hub.api.pagination import plain_number
from smsnodes_hub.appkeys import HUB
from smsnodes_hub.dashboard import queries
from smsnodes_hub.dashboard.pages import (
    MAX_PAGE,
    PER_PAGE,
    back,
    not_found,
    path_id,
    pool_of,
    render,
    who,
)
from smsnodes_hub.messaging import withdrawal
from smsnodes_hub.messaging.messages import STATUSES

log = logging.getLogger(__name__)


def _day(raw: str | None, name: str, problems: list[str]) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.combine(datetime.strptime(raw, "%Y-%m-%d").date(), time(), UTC)
    except ValueError:
        problems.append(f"{name} must be a date (YYYY-MM-DD)")
        return None


async def message_search(request: web.Request) -> web.Response:
    query = request.query
    problems: list[str] = []
    device_raw = query.get("device", "")
    device_id = int(device_raw) if plain_number(device_raw) and len(device_raw) < 19 else None
    if device_raw and device_id is None:
        problems.append("device must be one of the list")
    status = query.get("status") or None
    if status is not None and status not in STATUSES:
        problems.append("status must be one of the list")
        status = None
    since = _day(query.get("from"), "from", problems)
    until = _day(query.get("to"), "to", problems)
    if until is not None:
        until += timedelta(days=1)  # "to" is inclusive: the whole day
    page_raw = query.get("page", "1")
    page = int(page_raw) if plain_number(page_raw) and 1 <= int(page_raw) <= MAX_PAGE else 1
    search = queries.MessageSearch(device_id, status, since, until)
    pool = pool_of(request)
    rows = await queries.search_messages(pool, search, PER_PAGE + 1, (page - 1) * PER_PAGE)
    # Only valid filters go back into the form and the page links (nothing else is echoed).
    filters = {name: value for name, value, ok in (
        ("device", device_raw, device_id is not None), ("status", status or "", bool(status)),
        ("from", query.get("from", ""), since is not None),
        ("to", query.get("to", ""), until is not None)) if ok}
    return render(
        request, "messages.html", status=400 if problems else 200,
        rows=rows[:PER_PAGE], more=len(rows) > PER_PAGE, page=page, filters=filters,
        problems=problems, devices=await queries.device_names(pool),
        statuses=STATUSES,
    )


async def _message(request: web.Request) -> dict[str, Any] | None:
    found = await queries.get_message(pool_of(request), path_id(request))
    if found is None:
        return None
    row, events = found
    return {"message": row, "events": events,
            "cancellable": row["status"] in queries.CANCELLABLE}


async def message_page(request: web.Request) -> web.Response:
    data = await _message(request)
    if data is None:
        return not_found(request, "message")
    return render(request, "message.html", **data)


async def message_fragment(request: web.Request) -> web.Response:
    data = await _message(request)
    if data is None:
        raise web.HTTPNotFound(text="No such message")
    return render(request, "_message.html", **data)


async def cancel_message(request: web.Request) -> web.StreamResponse:
    message_id = path_id(request)
    pool = pool_of(request)
    path = f"/dashboard/messages/{message_id}"
    # withdrawal.cancel works per account (the API's rule); the operator acts for the owner.
    account_id = await queries.message_account(pool, message_id)
    if account_id is None:
        raise web.HTTPNotFound(text="No such message")
    try:
        withdrawn = await withdrawal.cancel(pool, account_id, message_id)
    except withdrawal.NotFound:
        raise web.HTTPNotFound(text="No such message") from None
    except withdrawal.NothingToCancel:
        raise back(path, "nothing-to-cancel") from None
    if withdrawn.on_phone:
        await request.config_dict[HUB].withdraw(withdrawn.device_id, message_id)
    log.info("dashboard: %r cancelled message %d", who(request), message_id)
    raise back(path, "cancelled")
