"""API tokens: POST /api/tokens (with the password; the token is shown once),
GET /api/tokens (API tokens and phone sessions), DELETE /api/tokens/{id} (either kind).

Authenticated as a phone, these are the phone's tokens (pinned: its sends go to it); as the
account (its own name and password, or an account token), the account's tokens (routed) for
POST, and every token of the account, its phones' too, for GET and DELETE."""

from __future__ import annotations

from aiohttp import web

from smsnodes_hub.api.auth import authenticate
from smsnodes_hub.api.body import read_json_object
from smsnodes_hub.api.errors import json_response
from smsnodes_hub.api.pagination import plain_number
from smsnodes_hub.appkeys import BEARER_CACHE, POOL
from smsnodes_hub.auth import tokens
from smsnodes_hub.errors import InvalidRequest, NotFound
from smsnodes_hub.timefmt import iso


def _describe(info: tokens.TokenInfo) -> dict[str, object]:
    return {"id": info.id, "kind": info.kind, "name": info.name,
            "createdAt": iso(info.created_at), "lastUsedAt": iso(info.last_used_at),
            "device": info.device}


async def create_token(request: web.Request) -> web.Response:
    principal = await authenticate(request, password_only=True)
    body = await read_json_object(request, allow_empty=True)
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidRequest("name must be a string")
    try:
        tokens.check_name(name)
    except ValueError as exc:  # a plain ValueError: the CLI checks names with it too
        raise InvalidRequest(str(exc)) from None
    info, token = await tokens.create_api_token(request.app[POOL], principal, name)
    return json_response({**_describe(info), "token": token}, status=201)


async def list_tokens(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    found = await tokens.list_tokens(request.app[POOL], principal.device_id,
                                     principal.account_id)
    return json_response({"data": [_describe(info) for info in found]})


async def revoke_token(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    raw = request.match_info["id"]
    if not plain_number(raw) or len(raw) > 18:
        raise NotFound(f"Token {raw[:40]} not found")
    token_id = int(raw)
    if not await tokens.revoke_token(request.app[POOL], principal.device_id, token_id,
                                     principal.account_id):
        raise NotFound(f"Token {token_id} not found")
    # This process forgets it now, not when its own NOTIFY comes back: a request that
    # follows the answer must not pass on the cached login (other processes rely on it).
    request.app[BEARER_CACHE].forget_token(token_id)
    return json_response({"id": token_id, "revoked": True})
