"""Request bodies: JSON objects of at most 64 KiB, holding only text PostgreSQL can store."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from smsnodes_hub import storable
from smsnodes_hub.errors import BodyTooLarge, InvalidRequest

MAX_BODY = 64 * 1024
TOO_LARGE = "Request body too large: the limit is 64 KiB"


async def read_json_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BodyTooLarge(TOO_LARGE)
    raw = bytearray()
    # read(n) returns only what has arrived so far: gather pieces until the end of the body.
    async for piece in request.content.iter_any():
        raw += piece
        if len(raw) > MAX_BODY:
            raise BodyTooLarge(TOO_LARGE)
    if not raw and allow_empty:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("Request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    # Anywhere in the body, even in a field the endpoint ignores: one rule, checked once.
    found = storable.first_problem(body)
    if found is not None:
        raise InvalidRequest(storable.describe(found))
    return body
