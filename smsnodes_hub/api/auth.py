"""Who is calling: `Authorization: Basic` (a device's username and password) or
`Authorization: Bearer` (an API token), for every authenticated endpoint."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from smsnodes_hub.appkeys import AUTH, BEARER_CACHE, KEYRING, POOL
from smsnodes_hub.auth.accounts import Principal
from smsnodes_hub.auth.addresses import client_address
from smsnodes_hub.auth.throttle import Throttled
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
    """Check a password, throttled per client address and username (auth/throttle.py)."""
    try:
        principal = await request.app[AUTH].login(request.app[POOL], username, password,
                                                  client_address(request))
    except Throttled as exc:
        raise RateLimited(exc.retry_after) from None
    if principal is None:
        raise Unauthorized(INVALID_CREDENTIALS)
    request.app[KEYRING].remember(principal)
    return principal


async def token_login(request: web.Request, token: str) -> Principal:
    # Not throttled: a token is 256 random bits, nobody guesses one, and a wrong one costs a
    # lookup like any request. Nor is it refused for someone else's wrong passwords.
    principal = await request.app[BEARER_CACHE].login(
        request.app[AUTH], request.app[POOL], token
    )
    if principal is None:
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
