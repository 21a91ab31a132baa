"""What a phone session raises when it cannot connect or authenticate."""

from __future__ import annotations


class PhoneError(Exception):
    """The phone could not connect or authenticate."""


class AuthFailed(PhoneError):
    """The hub answered ``auth_failed``; ``error`` is the hub's text."""

    def __init__(
        self, username: str, error: str, close_code: int | None, retry_after: float | None
    ) -> None:
        detail = f"auth_failed for {username!r}: {error}"
        if retry_after is not None:
            detail += f" (retryAfter={retry_after:g}s)"
        if close_code is not None:
            detail += f" [close code {close_code}]"
        super().__init__(detail)
        self.error = error
        self.close_code = close_code
        self.retry_after = retry_after
