"""Who is calling: `Authorization: Basic` (a device's username and password) or
`Authorization: Bearer` (an API token), for every authenticated endpoint."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from smsnodes_hub.appkeys import AUTH, BEARER_CACHE, KEYRING, LOGIN_THROTTLE, POOL
from smsnodes_hub.auth.accounts import Principal
from smsnodes_hub.errors import INVALID_CREDENTIALS, Forbidden, RateLimited, Unauthorized

AUTH_REQUIRED = "Authentication required: use Authorization: Basic or Bearer"


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    """(username, password) from a Basic header; None without one. Undecodable base64 is a
    401: the caller meant to authenticate and failed."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized(INVALID_CREDENTIALS) from None
    # Empty parts are returned as such: send-sms answers them as missing (400).
    username, _, password = decoded.partition(":")
    return username, password


def bearer_token(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


async def password_login(request: web.Request, username: str, password: str) -> Principal:
    """Check a password with failed-login throttling per address and username."""
    address = request.remote or "unknown"
    throttle = request.app[LOGIN_THROTTLE]
    retry_after = throttle.retry_after(username, address)
    if retry_after is not None:
        raise RateLimited(retry_after)
    principal = await request.app[AUTH].login(request.app[POOL], username, password)
    if principal is None:
        throttle.failure(username, address)
        raise Unauthorized(INVALID_CREDENTIALS)
    throttle.success(username, address)
    request.app[KEYRING].remember(principal)
    return principal


async def token_login(request: web.Request, token: str) -> Principal:
    address = request.remote or "unknown"
    throttle = request.app[LOGIN_THROTTLE]
    retry_after = throttle.retry_after(None, address)
    if retry_after is not None:
        raise RateLimited(retry_after)
    principal = await request.app[BEARER_CACHE].login(
        request.app[AUTH], request.app[POOL], token
    )
    if principal is None:
        throttle.failure(None, address)
        raise Unauthorized(INVALID_CREDENTIALS)
    request.app[KEYRING].remember(principal)
    return principal


ACCOUNT_ONLY = ("This needs the account's credentials: Basic with the account's name and "
                "password, or an account token")


async def authenticate_account(request: web.Request) -> Principal:
    """The caller, who must be an account (not one of its phones)."""
    principal = await authenticate(request)
    if not principal.is_account:
        raise Forbidden(ACCOUNT_ONLY)
    return principal


async def authenticate(request: web.Request, *, password_only: bool = False) -> Principal:
    """The caller of an extension endpoint. `password_only` for what needs the password
    itself (creating API tokens)."""
    credentials = basic_credentials(request)
    if credentials is not None:
        if not all(credentials):
            raise Unauthorized(INVALID_CREDENTIALS)
        return await password_login(request, *credentials)
    token = bearer_token(request)
    if token is not None and not password_only:
        return await token_login(request, token)
    if password_only:
        raise Unauthorized("This needs the device password: use Authorization: Basic")
    raise Unauthorized(AUTH_REQUIRED, {"WWW-Authenticate": 'Basic realm="smsnodes-hub"'})
