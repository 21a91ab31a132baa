"""Every /api/* failure is JSON `{"error": ..., "code": ...}`: never an HTML page or a stack
trace. This is the one place where an exception becomes an answer: handlers and domain code
raise `smsnodes_hub.errors.HubError`s (or let a database error through) and `json_errors`
answers them."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg
import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from smsnodes_hub.api import ratelimit
from smsnodes_hub.api.body import TOO_LARGE
from smsnodes_hub.db import UNAVAILABLE
from smsnodes_hub.errors import (
    ANSWERS,
    BodyTooLarge,
    HubError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    Unavailable,
)

log = logging.getLogger(__name__)

RETRY_AFTER_UNAVAILABLE = 5
DATABASE_UNAVAILABLE = "Database unavailable"
# The seed's 500 body (seeds/smsnodes-api.txt): a query that failed for another reason than
# a lost database. Anything else unexpected is a bug, answered with INTERNAL_ERROR.
DATABASE_ERROR = "Database error"
INTERNAL_ERROR = "Internal server error"
UNREADABLE_BODY = "Request body cannot be read"
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

# aiohttp's own refusals (the router's 404 and 405), as the hub words them.
_FROM_HTTP: dict[int, tuple[type[HubError], str]] = {
    404: (NotFound, "Not found"),
    405: (MethodNotAllowed, "Method not allowed"),
    413: (BodyTooLarge, TOO_LARGE),
}
_CODES: dict[int, str] = {}
for _cls in ANSWERS:  # the first class of a status names it (429: rate_limited)
    _CODES.setdefault(_cls.status, _cls.code)
_HTTP_HEADERS = {"allow", "retry-after"}


def json_response(body: object, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json",
        headers=headers,
    )


def error_response(error: HubError) -> web.Response:
    return json_response({"error": error.message, "code": error.code}, error.status,
                         error.headers)


def as_hub_error(request: web.Request, exc: Exception) -> HubError:
    """The answer to `exc`, raised while handling `request`. A HubError is its own answer;
    anything else is logged here (call this from the `except`, for the traceback)."""
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, web.HTTPException):
        return _from_http(exc)
    if isinstance(exc, RequestPayloadError):
        # The body does not match its Content-Encoding or its chunked framing.
        return InvalidRequest(f"{UNREADABLE_BODY}: {_client_fault(exc)}")
    if isinstance(exc, DATABASE_DOWN):
        # Without the DSN or any secret: asyncpg's messages hold neither.
        log.warning("%s %s: database unavailable: %s: %s",
                    request.method, request.path, type(exc).__name__, exc)
        return Unavailable(DATABASE_UNAVAILABLE, RETRY_AFTER_UNAVAILABLE)
    log.exception("%s %s failed", request.method, request.path)
    return InternalError(DATABASE_ERROR if isinstance(exc, asyncpg.PostgresError)
                         else INTERNAL_ERROR)


def _from_http(exc: web.HTTPException) -> HubError:
    headers = {k: v for k, v in exc.headers.items() if k.lower() in _HTTP_HEADERS}
    if exc.status in _FROM_HTTP:
        cls, message = _FROM_HTTP[exc.status]
        return cls(message, headers)
    error = HubError(exc.reason, headers)
    error.status = exc.status
    error.code = _CODES.get(exc.status, exc.reason.lower().replace(" ", "_"))
    return error


def _client_fault(exc: BaseException) -> str:
    """What aiohttp's parser said about a malformed request, in one short line."""
    cause = exc.__cause__ if isinstance(exc, RequestPayloadError) else exc
    text = cause.message if isinstance(cause, HttpProcessingError) else str(cause)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return (lines[0] if lines else type(cause).__name__)[:200]


class MalformedRequests(logging.Filter):
    """aiohttp's HTTP parser refuses a request that is not HTTP/1.1 (a control byte in a
    header, a header line over 8 KiB, a body that does not match its Content-Encoding) with
    a plain 400 before any route sees it, and logs a traceback at ERROR for each (also for
    a broken body nobody read): anyone could fill the log with them. Such a record becomes
    one INFO line: the client's mistake, answered already, and no failure of the hub."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError | RequestPayloadError):
            record.msg, record.args = "malformed request: %s", (_client_fault(exc),)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
            # Levels were checked before filters: check again for the new one.
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


_MALFORMED = MalformedRequests()


def quiet_malformed_requests() -> None:
    """Install MalformedRequests on aiohttp's server logger (once per process)."""
    logging.getLogger("aiohttp.server").addFilter(_MALFORMED)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = as_hub_error(request, exc)
    except Exception as exc:
        error = as_hub_error(request, exc)
    response = error_response(error)
    ratelimit.stamp_unhandled(request, response)
    return response
