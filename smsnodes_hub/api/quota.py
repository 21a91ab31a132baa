"""GET /api/quota: the account's daily and monthly quota, what is used and when each resets
(ACCOUNTS.md "Quotas"). Any credential of the account may read it."""

from __future__ import annotations

from aiohttp import web

from smsnodes_hub.api.auth import authenticate
from smsnodes_hub.api.errors import json_response
from smsnodes_hub.appkeys import POOL
from smsnodes_hub.messaging import quotas


async def get_quota(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    return json_response(quotas.render(await quotas.current(request.app[POOL],
                                                            principal.account_id)))
