"""POST /api/send-sms, compatible with the SMS Nodes gateway (HTTP-API.md)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from .. import phones
from ..accounts import Principal
from ..appkeys import AUTH, HUB, LOGIN_THROTTLE, POOL, SEND_LIMITER
from ..sending import CredentialsChanged, submit
from ..throttle import RateDecision
from .errors import ApiError, json_response

MAX_BODY = 64 * 1024
MAX_TEXT = 1600
MISSING_CREDENTIALS = "Username and password are required"
INVALID_CREDENTIALS = "Invalid credentials"
RATE_LIMITED = "Rate limit exceeded"


@dataclass(frozen=True, slots=True)
class SendRequest:
    numbers: list[str]
    text: str
    priority: int


async def post_send_sms(request: web.Request) -> web.Response:
    limiter = request.app[SEND_LIMITER]
    address = request.remote or "unknown"
    decision: RateDecision | None = None
    try:
        body = await _read_json(request)
        username, password = _credentials(request, body)
        send = _validate(body)
        principal = await _login(request, username, password, address)
        if limiter.enabled:
            decision = limiter.hit(("account", principal.account_id))
            if not decision.allowed:
                raise ApiError(429, RATE_LIMITED, {"Retry-After": str(decision.reset)})
        try:
            accepted = await submit(
                request.app[HUB], request.app[POOL], principal,
                text=send.text, numbers=send.numbers, priority=send.priority,
            )
        except CredentialsChanged:
            request.app[AUTH].cache.forget_device(principal.device_id)
            raise ApiError(401, INVALID_CREDENTIALS) from None
        response = json_response({
            "message": "SMS queued successfully",
            "messageId": accepted.message_id,
            "deviceOnline": accepted.device_online,
            "sentImmediately": accepted.sent_immediately,
        })
    except ApiError as exc:
        if decision is None and limiter.enabled:
            # Requests that never reached an account count against the caller's address.
            decision = limiter.hit(("address", address))
            if not decision.allowed and exc.status != 429:
                exc = ApiError(429, RATE_LIMITED, {"Retry-After": str(decision.reset)})
        response = json_response({"error": exc.message}, exc.status, exc.headers)
    if decision is not None:
        response.headers["X-RateLimit-Limit"] = str(decision.limit)
        response.headers["X-RateLimit-Remaining"] = str(max(decision.remaining, 0))
        response.headers["X-RateLimit-Reset"] = str(decision.reset)
    return response


async def _read_json(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "Request body too large: the limit is 64 KiB")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ApiError(413, "Request body too large: the limit is 64 KiB")
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "Request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return body


def _credentials(request: web.Request, body: dict[str, Any]) -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(401, INVALID_CREDENTIALS) from None
        username, sep, password = decoded.partition(":")
        if not sep or not username or not password:
            raise ApiError(400, MISSING_CREDENTIALS)
        return username, password
    username = body.get("deviceUsername")
    password = body.get("password")
    if not username or not password:
        raise ApiError(400, MISSING_CREDENTIALS)
    if not isinstance(username, str) or not isinstance(password, str):
        raise ApiError(400, "deviceUsername and password must be strings")
    return username, password


def _validate(body: dict[str, Any]) -> SendRequest:
    if "phoneNumbers" not in body:
        raise ApiError(400, "phoneNumbers is required")
    try:
        numbers = phones.normalize_list(body["phoneNumbers"])
    except phones.InvalidNumber as exc:
        raise ApiError(400, str(exc)) from None
    text = body.get("message")
    if text is None:
        raise ApiError(400, "message is required")
    if not isinstance(text, str) or not text:
        raise ApiError(400, "message must be a non-empty string")
    if len(text) > MAX_TEXT:
        raise ApiError(400, f"message must be at most {MAX_TEXT} characters")
    priority = body.get("priority", 1)
    if priority is None:
        priority = 1
    if type(priority) is not int or not 1 <= priority <= 5:
        raise ApiError(400, "priority must be an integer from 1 to 5")
    return SendRequest(numbers, text, priority)


async def _login(request: web.Request, username: str, password: str, address: str) -> Principal:
    throttle = request.app[LOGIN_THROTTLE]
    retry_after = throttle.retry_after(username, address)
    if retry_after is not None:
        raise ApiError(429, RATE_LIMITED, {"Retry-After": str(retry_after)})
    principal = await request.app[AUTH].login(request.app[POOL], username, password)
    if principal is None:
        throttle.failure(username, address)
        raise ApiError(401, INVALID_CREDENTIALS)
    throttle.success(username, address)
    return principal
