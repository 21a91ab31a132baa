"""Failed-login throttling and the per-account send rate limit (in memory, per process)."""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass

from smsnodes_hub.auth.accounts import USERNAME_RE

# Forget a failure record this long after its last failure (and after any lockout ends).
_FORGET_AFTER = 3600.0
_MAX_ENTRIES = 100_000
_MAX_LOCKOUT = 86400.0


def client_key(address: str) -> str:
    """What one client is counted as: its IPv4 address, or its IPv6 /64. A single IPv6 host
    usually holds a whole /64, so counting its addresses one by one would give it 2**64
    fresh budgets."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip), 64), strict=False))
    return str(ip)


def _trackable(username: str | None) -> str | None:
    # A name no account can have is not kept: the caller chooses its size (up to the body
    # limit), and the address is counted anyway.
    return username if username is not None and USERNAME_RE.fullmatch(username) else None


@dataclass(slots=True)
class _Failures:
    count: int = 0
    locked_until: float = 0.0
    last: float = 0.0


class LoginThrottle:
    """Exponential lockouts per client address and per username.

    After `max_failures` wrong passwords an address is locked out for `lockout` seconds,
    doubling with every further failure. A username under attack is locked the same way,
    but only for addresses that have failed before: the owner logging in from a clean
    address (another network, the phone itself) still gets in, while each attacking address
    gets at most `max_failures` guesses before its own lockout starts."""

    __slots__ = ("_addresses", "_lockout", "_max", "_users")

    def __init__(self, max_failures: int, lockout_seconds: float) -> None:
        self._max = max_failures
        self._lockout = lockout_seconds
        self._addresses: dict[str, _Failures] = {}
        self._users: dict[str, _Failures] = {}

    def retry_after(self, username: str | None, address: str) -> int | None:
        """Seconds to wait before this attempt may be checked, or None to go ahead."""
        address, username = client_key(address), _trackable(username)
        now = time.monotonic()
        by_address = self._live(self._addresses, address, now)
        if by_address and by_address.locked_until > now:
            return math.ceil(by_address.locked_until - now)
        if username is not None and by_address is not None and by_address.count:
            by_user = self._live(self._users, username, now)
            if by_user and by_user.locked_until > now:
                return math.ceil(by_user.locked_until - now)
        return None

    def failure(self, username: str | None, address: str) -> None:
        address, username = client_key(address), _trackable(username)
        now = time.monotonic()
        self._bump(self._addresses, address, now)
        if username is not None:
            self._bump(self._users, username, now)

    def success(self, username: str | None, address: str) -> None:
        address, username = client_key(address), _trackable(username)
        self._addresses.pop(address, None)
        if username is not None:
            self._users.pop(username, None)

    def _live(self, table: dict[str, _Failures], key: str, now: float) -> _Failures | None:
        entry = table.get(key)
        if entry is not None and now - max(entry.last, entry.locked_until) > _FORGET_AFTER:
            del table[key]
            return None
        return entry

    def _bump(self, table: dict[str, _Failures], key: str, now: float) -> None:
        if len(table) >= _MAX_ENTRIES:
            self._prune(table, now)
        entry = self._live(table, key, now) or table.setdefault(key, _Failures())
        entry.count += 1
        entry.last = now
        if entry.count >= self._max:
            doublings = min(entry.count - self._max, 30)
            entry.locked_until = now + min(self._lockout * 2**doublings, _MAX_LOCKOUT)

    def _prune(self, table: dict[str, _Failures], now: float) -> None:
        for key in [k for k, v in table.items() if now - max(v.last, v.locked_until) > 60]:
            del table[key]


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the window resets


@dataclass(slots=True)
class _Window:
    started: float
    used: int


class RateLimiter:
    """A fixed one-minute window per key (an account, or a client address before login).
    `per_minute = 0` turns the limit off."""

    __slots__ = ("_windows", "per_minute")

    WINDOW = 60.0

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._windows: dict[object, _Window] = {}

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def hit(self, key: object, cost: int = 1) -> RateDecision:
        now = time.monotonic()
        window = self._windows.get(key)
        if window is None or now - window.started >= self.WINDOW:
            if len(self._windows) >= _MAX_ENTRIES:
                self._windows = {
                    k: w for k, w in self._windows.items() if now - w.started < self.WINDOW
                }
            window = self._windows[key] = _Window(now, 0)
        reset = max(1, math.ceil(window.started + self.WINDOW - now))
        if window.used + cost > self.per_minute:
            return RateDecision(False, self.per_minute, self.per_minute - window.used, reset)
        window.used += cost
        return RateDecision(True, self.per_minute, self.per_minute - window.used, reset)

    def peek(self, key: object) -> RateDecision:
        return self.hit(key, cost=0)
