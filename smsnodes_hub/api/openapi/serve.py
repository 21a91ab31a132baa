"""GET /api/openapi.json: the document, cached and answered with an `ETag`."""

from __future__ import annotations

import hashlib
from functools import lru_cache

import orjson
from aiohttp import web

from smsnodes_hub.api.openapi.builders import JSON
from smsnodes_hub.api.openapi.spec import document


@lru_cache(maxsize=1)
def served() -> tuple[bytes, str]:
    """The document as served (relative server URL, so it is the same for every host), and
    its ETag."""
    body = orjson.dumps(document())
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'


async def get_openapi(request: web.Request) -> web.Response:
    body, etag = served()
    headers = {"ETag": etag, "Cache-Control": "public, max-age=300"}
    wanted = {tag.strip().removeprefix("W/") for tag in
              request.headers.get("If-None-Match", "").split(",")}
    if etag in wanted or "*" in wanted:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=JSON, headers=headers)
