"""POST /api/send-sms, compatible with the SMS Nodes gateway (HTTP-API.md)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from smsnodes_hub import errors
from smsnodes_hub.api import ratelimit
from smsnodes_hub.api.auth import basic_credentials, bearer_token, password_login, token_login
from smsnodes_hub.api.body import read_json_object
from smsnodes_hub.api.errors import as_hub_error, json_response
from smsnodes_hub.appkeys import AUTH, BEARER_CACHE, HUB, METRICS, POOL, SEND_LIMITER, SETTINGS
from smsnodes_hub.auth.accounts import USERNAME_RE, Principal
from smsnodes_hub.auth.addresses import client_address
from smsnodes_hub.auth.throttle import RateDecision, client_key
from smsnodes_hub.errors import Conflict, HubError, InvalidRequest, RateLimited
from smsnodes_hub.messaging import idempotency, phones
from smsnodes_hub.messaging.segments import analyze
from smsnodes_hub.messaging.sending import Accepted, CredentialsChanged, Outgoing, store, submit
from smsnodes_hub.timefmt import parse_iso

MAX_TEXT = 1600
MAX_AHEAD = timedelta(days=366)  # the furthest a message may be scheduled or kept
# The seed's strings (its 400 and 401), and the rate limit's; the OpenAPI document shows them.
MISSING_CREDENTIALS = "Username and password are required"
INVALID_CREDENTIALS = errors.INVALID_CREDENTIALS
RATE_LIMITED = errors.RATE_LIMITED
SIMS = (1, 2)  # the SIM slots a phone may be told to send from
SIM_INVALID = "sim must be 1 or 2 (the phone's SIM slot)"
DEVICE_INVALID = "device must be the name of one of the account's phones"


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str | None = None
    password: str | None = None
    token: str | None = None


async def post_send_sms(request: web.Request) -> web.Response:
    limiter = request.app[SEND_LIMITER]
    address = client_address(request)
    decision: RateDecision | None = None
    try:
        # An empty body is not a JSON object (HTTP-API.md): that is the error, not the
        # missing credentials it also lacks.
        body = await read_json_object(request)
        credentials = _credentials(request, body)
        draft = _validate(body, request.app[SETTINGS].messaging.default_region or None)
        key = _idempotency_key(request)
        try:
            principal = await _login(request, credentials)
            draft = _pinned(draft, principal)
            if limiter.enabled:
                decision = limiter.hit(("account", principal.account_id))
                if not decision.allowed:
                    raise RateLimited(decision.reset)
            started = time.perf_counter()
            if key is None:
                out = draft.at(datetime.now(UTC))
                response = _answer(await _submit(request, principal, out), out)
            else:
                response = await _submit_once(request, principal, draft, body, key)
            metrics = request.app.get(METRICS)
            if metrics is not None:  # the one cost on this path: a histogram observe()
                metrics.send_latency.observe(time.perf_counter() - started)
        # Turned into their answer here rather than in the middleware, so that these too
        # carry this request's rate headers.
        except (HubError, web.HTTPException):
            raise
        except Exception as exc:
            raise as_hub_error(request, exc) from None
    except HubError as exc:
        error = exc
        if decision is None and limiter.enabled:
            # Requests that never reached an account count against the caller's address.
            decision = limiter.hit(("address", client_key(address)))
            if not decision.allowed and error.status != 429:
                error = RateLimited(decision.reset)
        error.headers.update(ratelimit.headers(decision))
        raise error from None  # answered by the middleware
    reply = json_response(response)
    ratelimit.stamp(reply, decision)
    return reply


def _answer(accepted: Accepted, out: Outgoing) -> dict[str, Any]:
    segmentation = analyze(out.text)
    return {
        "message": "SMS scheduled successfully" if accepted.scheduled
        else "SMS queued successfully",
        "messageId": accepted.message_id,
        "deviceOnline": accepted.device_online,
        "sentImmediately": accepted.sent_immediately,
        "segments": segmentation.segments * len(out.numbers),
        "segmentsPerRecipient": segmentation.segments,
        "encoding": segmentation.encoding,
        "device": accepted.device,
        # As NEXSMS does, only where the account has a quota.
        **({"remainingQuota": accepted.remaining_quota}
           if accepted.remaining_quota is not None else {}),
    }


def _pinned(draft: Draft, principal: Principal) -> Draft:
    """`device` chooses one phone of the account; a phone's own credentials send from that
    phone, so for them it may only name that phone."""
    if draft.device is None or principal.is_account:
        return draft
    if draft.device != principal.username:
        raise InvalidRequest(f"device {draft.device} cannot be chosen with the credentials of "
                             f"phone {principal.username}: use the account's")
    return replace(draft, device=None)


def _forget_login(request: web.Request, principal: Principal) -> None:
    """After CredentialsChanged (answered 401): the cached login is stale."""
    if principal.device_id is None:
        request.app[AUTH].cache.forget_account(principal.account_id)
        request.app[BEARER_CACHE].forget_account(principal.account_id)
    else:
        request.app[AUTH].cache.forget_device(principal.device_id)
        request.app[BEARER_CACHE].forget_device(principal.device_id)


async def _submit(request: web.Request, principal: Principal, out: Outgoing) -> Accepted:
    try:
        return await submit(request.app[HUB], request.app[POOL], principal, out)
    except CredentialsChanged:
        _forget_login(request, principal)
        raise


async def _submit_once(request: web.Request, principal: Principal, draft: Draft,
                       body: dict[str, Any], key: str) -> dict[str, Any]:
    """With an Idempotency-Key: claim the key, store the message and record the answer in
    one transaction; push only after it commits. A repeat gets the first answer before the
    checks against the clock, which it may no longer pass (an expiresAt now past)."""
    hub, pool = request.app[HUB], request.app[POOL]
    request_hash = idempotency.fingerprint(principal, {
        k: v for k, v in body.items() if k not in ("deviceUsername", "password")
    })
    async with pool.acquire() as conn:
        stored = None
        try:
            async with conn.transaction():
                prior = await idempotency.reserve(conn, principal.account_id, key, request_hash)
                if prior is not None:
                    if not prior.same_request:
                        raise Conflict(f"{idempotency.HEADER} was already used with a "
                                       "different request")
                    if prior.response is None:  # pragma: no cover - recorded in the same txn
                        raise Conflict(f"{idempotency.HEADER} is in use by a request "
                                       "still in progress")
                    return prior.response
                # Raising here rolls the claim back: a refused request leaves no key behind.
                out = draft.at(datetime.now(UTC))
                stored = await store(hub, conn, principal, out)
                expected = _answer(stored.expected, out)
                await idempotency.record(conn, principal.account_id, key, stored.message_id,
                                         expected)
        except CredentialsChanged:
            _forget_login(request, principal)
            raise
        except BaseException:
            if stored is not None:
                stored.abandon()
            raise
    actual = _answer(await stored.push(hub, pool), out)
    if actual != expected:
        await idempotency.record(pool, principal.account_id, key, stored.message_id, actual)
    return actual


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get(idempotency.HEADER)
    if key is None:
        return None
    if not key or len(key) > idempotency.MAX_KEY or not key.isprintable():
        raise InvalidRequest(f"{idempotency.HEADER} must be 1 to {idempotency.MAX_KEY} "
                             "printable characters")
    return key


def _credentials(request: web.Request, body: dict[str, Any]) -> Credentials:
    token = bearer_token(request)
    if token is not None:
        return Credentials(token=token)
    basic = basic_credentials(request)
    username: str | None
    password: str | None
    if basic is not None:
        username, password = basic
    else:
        username, password = body.get("deviceUsername"), body.get("password")
    if not username or not password:
        raise InvalidRequest(MISSING_CREDENTIALS)
    if not isinstance(username, str) or not isinstance(password, str):
        raise InvalidRequest("deviceUsername and password must be strings")
    return Credentials(username, password)


async def _login(request: web.Request, credentials: Credentials) -> Principal:
    if credentials.token is not None:
        return await token_login(request, credentials.token)
    assert credentials.username is not None and credentials.password is not None
    return await password_login(request, credentials.username, credentials.password)


@dataclass(frozen=True, slots=True)
class Draft:
    """A request that passed every check that does not depend on the clock."""

    text: str
    numbers: list[str]
    priority: int
    scheduled_at: datetime | None
    expires_at: datetime | None
    ttl: int | None
    sim: int | None = None
    device: str | None = None

    def at(self, now: datetime) -> Outgoing:
        """The message to store, after the checks against `now`."""
        scheduled_at = self.scheduled_at
        if scheduled_at is not None:
            if scheduled_at > now + MAX_AHEAD:
                raise InvalidRequest("scheduledAt must be within a year from now")
            if scheduled_at <= now:
                scheduled_at = None  # due already: send now
        expires_at = self.expires_at
        if self.ttl is not None:
            expires_at = now + timedelta(seconds=self.ttl)
            if scheduled_at is not None and expires_at <= scheduled_at:
                raise InvalidRequest("ttl must end after scheduledAt: it counts seconds "
                                     "from now, not from scheduledAt")
        elif expires_at is not None:
            if expires_at <= now:
                raise InvalidRequest("expiresAt must be in the future")
            if expires_at > now + MAX_AHEAD:
                raise InvalidRequest("expiresAt must be within a year from now")
            if scheduled_at is not None and expires_at <= scheduled_at:
                raise InvalidRequest("expiresAt must be after scheduledAt")
        return Outgoing(self.text, self.numbers, self.priority, scheduled_at, expires_at,
                        self.sim, self.device)


def _validate(body: dict[str, Any], region: str | None) -> Draft:
    if "phoneNumbers" not in body:
        raise InvalidRequest("phoneNumbers is required")
    numbers = phones.normalize_list(body["phoneNumbers"], region)  # InvalidNumber is a 400
    text = body.get("message")
    if text is None:
        raise InvalidRequest("message is required")
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequest("message must be a non-empty string")
    if len(text) > MAX_TEXT:
        raise InvalidRequest(f"message must be at most {MAX_TEXT} characters")
    priority = body.get("priority", 1)
    if priority is None:
        priority = 1
    if type(priority) is not int or not 1 <= priority <= 5:
        raise InvalidRequest("priority must be an integer from 1 to 5")
    scheduled_at = _timestamp(body, "scheduledAt")
    expires_at = _timestamp(body, "expiresAt")
    ttl = body.get("ttl")
    if ttl is not None:
        if expires_at is not None:
            raise InvalidRequest("ttl and expiresAt cannot be used together")
        if type(ttl) is not int or not 1 <= ttl <= MAX_AHEAD.total_seconds():
            raise InvalidRequest("ttl must be a whole number of seconds from 1 to 31622400")
    sim = body.get("sim")
    if sim is not None and (type(sim) is not int or sim not in SIMS):
        raise InvalidRequest(SIM_INVALID)
    device = body.get("device")
    if device is not None and (not isinstance(device, str) or not USERNAME_RE.match(device)):
        raise InvalidRequest(DEVICE_INVALID)
    return Draft(text, numbers, priority, scheduled_at, expires_at, ttl, sim, device)


def _timestamp(body: dict[str, Any], name: str) -> datetime | None:
    raw = body.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidRequest(f"{name} must be an ISO 8601 timestamp string")
    try:
        return parse_iso(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an ISO 8601 timestamp, "
                             "e.g. 2026-11-21T10:00:00Z") from None
