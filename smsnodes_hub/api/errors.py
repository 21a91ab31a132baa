"""Every /api/* failure is JSON `{"error": ...}`: never an HTML page or a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg
import orjson
from aiohttp import web

from ..db import UNAVAILABLE

log = logging.getLogger(__name__)

RETRY_AFTER_UNAVAILABLE = "5"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: object, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json",
        headers=headers,
    )


def error_response(status: int, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"error": message}, status, headers)


class ApiError(Exception):
    """Raised by handlers and domain code to answer with a documented error."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


_REASONS = {
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large: the limit is 64 KiB",
}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = _REASONS.get(exc.status, exc.reason)
        headers = {k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}}
        return error_response(exc.status, message, headers)
    except (*UNAVAILABLE, asyncpg.PostgresConnectionError) as exc:
        log.warning("%s %s: database unavailable: %s", request.method, request.path, exc)
        return error_response(
            503, "Database unavailable", {"Retry-After": RETRY_AFTER_UNAVAILABLE}
        )
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "Internal server error")
