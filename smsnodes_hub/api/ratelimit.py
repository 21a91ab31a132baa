"""The `X-RateLimit-*` headers that HTTP-API.md puts on every response of send-sms, also on
those its handler never sees (405 for a wrong method, answered by the router)."""

from __future__ import annotations

from aiohttp import web

from smsnodes_hub.appkeys import SEND_LIMITER
from smsnodes_hub.auth.addresses import client_address
from smsnodes_hub.auth.throttle import RateDecision, client_key

SEND_PATH = "/api/send-sms"
HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
# With the limit off (send_per_minute = 0) every header reads 0, as 0 means "off" in the
# configuration too: there is no budget to count down and no window to wait for.
_OFF = ("0", "0", "0")


def headers(decision: RateDecision | None) -> dict[str, str]:
    """The three headers for `decision`; None means the limit is off."""
    if decision is None:
        values = _OFF
    else:
        values = (str(decision.limit), str(max(decision.remaining, 0)), str(decision.reset))
    return dict(zip(HEADERS, values, strict=True))


def stamp(response: web.StreamResponse, decision: RateDecision | None) -> None:
    response.headers.update(headers(decision))


def stamp_unhandled(request: web.Request, response: web.StreamResponse) -> None:
    """For a send-sms answer that did not come from its handler (a wrong method): the
    caller's address budget as it stands, without spending any of it."""
    if request.path != SEND_PATH or HEADERS[0] in response.headers:
        return
    limiter = request.app.get(SEND_LIMITER)
    decision = None
    if limiter is not None and limiter.enabled:
        decision = limiter.peek(("address", client_key(client_address(request))))
    stamp(response, decision)
