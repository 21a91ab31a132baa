"""The errors a request can end in. Each class has an HTTP status and a stable
machine-readable `code`; the message is for people and safe to show the caller (never a
password, token or SQL).

Domain code raises these, or its own subclasses of them (`withdrawal.NotFound`,
`webhooks.WebhookError`...), and handlers let them through: one middleware
(`api/errors.py`) answers every one as `{"error": message, "code": code}` with its status
and headers. This module imports nothing of the hub's, so any layer may use it.
"""

from __future__ import annotations

from collections.abc import Mapping

INVALID_CREDENTIALS = "Invalid credentials"
RATE_LIMITED = "Rate limit exceeded"
QUOTA_EXCEEDED = "Quota exceeded"


class HubError(Exception):
    """A request that cannot be done, and the answer it gets."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Per instance: a handler may add its own (send-sms adds the X-RateLimit-* ones).
        self.headers: dict[str, str] = dict(headers or {})


class InvalidRequest(HubError):
    """A field, parameter, header or body the endpoint does not accept."""

    status = 400
    code = "invalid_request"


class Unauthorized(HubError):
    """No credentials, or credentials that do not log in."""

    status = 401
    code = "unauthorized"


class Forbidden(HubError):
    """Credentials that log in, but not as who may do this (a phone where only its account
    may act, or the account where only a phone may)."""

    status = 403
    code = "forbidden"


class NotFound(HubError):
    """No such resource for this caller (another account's ids are not found either)."""

    status = 404
    code = "not_found"


class MethodNotAllowed(HubError):
    status = 405
    code = "method_not_allowed"


class Conflict(HubError):
    """The resource's state refuses the request: already sent, a limit reached, a key
    reused."""

    status = 409
    code = "conflict"


class BodyTooLarge(HubError):
    status = 413
    code = "body_too_large"


class RateLimited(HubError):
    """Too many requests (or failed logins); `Retry-After` says in how many seconds."""

    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: int, message: str = RATE_LIMITED) -> None:
        super().__init__(message, {"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class QuotaExceeded(HubError):
    """The account's daily or monthly quota of SMS would be exceeded (ACCOUNTS.md "Quotas");
    `Retry-After` says in how many seconds that period resets."""

    status = 429
    code = "quota_exceeded"

    def __init__(self, retry_after: int) -> None:
        super().__init__(QUOTA_EXCEEDED, {"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class InternalError(HubError):
    """A failure of the hub itself; its details stay in the log."""

    status = 500
    code = "internal_error"


class Unavailable(HubError):
    """Something the hub needs (the database) cannot be reached: try again later."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, {"Retry-After": str(retry_after)})
        self.retry_after = retry_after


# Every class a client can meet, in status order (docs/http-api.md lists their codes); the
# first of a status is the one an answer of that status without a class of its own gets.
ANSWERS: tuple[type[HubError], ...] = (
    InvalidRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict,
    BodyTooLarge, RateLimited, QuotaExceeded, InternalError, Unavailable,
)
