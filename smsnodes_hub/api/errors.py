"""Every /api/* failure is JSON `{"error": ...}`: never an HTML page or a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg
import orjson
from aiohttp import web

from smsnodes_hub.api import ratelimit
from smsnodes_hub.db import UNAVAILABLE

log = logging.getLogger(__name__)

RETRY_AFTER_UNAVAILABLE = "5"
DATABASE_UNAVAILABLE = "Database unavailable"
# The seed's 500 body (seeds/smsnodes-api.txt): a query that failed for another reason than
# a lost database. Anything else unexpected is a bug, answered with INTERNAL_ERROR.
DATABASE_ERROR = "Database error"
INTERNAL_ERROR = "Internal server error"
# What a lost, refused or overloaded database raises, as opposed to a bug in a query. The
# last three come from opening a connection: a database closed to connections (55000, e.g.
# ALLOW_CONNECTIONS false), dropped (3D000), or refusing the hub's role (28000, 28P01).
DATABASE_DOWN: tuple[type[BaseException], ...] = (
    *UNAVAILABLE,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.ObjectNotInPrerequisiteStateError,
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
)
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


def database_unavailable(request: web.Request, exc: BaseException) -> ApiError:
    """Log (without the DSN or any secret: asyncpg's messages hold neither) and answer 503."""
    log.warning("%s %s: database unavailable: %s: %s",
                request.method, request.path, type(exc).__name__, exc)
    return ApiError(503, DATABASE_UNAVAILABLE, {"Retry-After": RETRY_AFTER_UNAVAILABLE})


def internal_error(request: web.Request, exc: BaseException) -> ApiError:
    """Log the traceback of an unexpected failure (call it from an `except`); the caller
    sees no detail of it."""
    log.exception("%s %s failed", request.method, request.path)
    message = DATABASE_ERROR if isinstance(exc, asyncpg.PostgresError) else INTERNAL_ERROR
    return ApiError(500, message)


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
        response = error_response(exc.status, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = _REASONS.get(exc.status, exc.reason)
        headers = {k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}}
        response = error_response(exc.status, message, headers)
    except DATABASE_DOWN as exc:
        error = database_unavailable(request, exc)
        response = error_response(error.status, error.message, error.headers)
    except Exception as exc:
        error = internal_error(request, exc)
        response = error_response(error.status, error.message)
    ratelimit.stamp_unhandled(request, response)
    return response
