"""Failed-login throttling, shared by every hub process through PostgreSQL (sql/013), and
the per-account send rate limit (in memory, per process).

A guesser slows only guesses. Failures are counted per (client address, username): after
`per_address` of them that address may not try that username for `lockout` seconds,
doubling with each further failure (at most a day). A username also has its own count over
every address, with a higher limit (`per_username`), which refuses only addresses that
failed for that username themselves: a botnet gets one guess per address, while the owner
on a clean address still logs in. Another account, an API token, a session token, and the
owner from another address are never refused because of someone's wrong passwords. Names
no account can have (malformed, holding a NUL) count as one username per address.

Where it costs: a login whose password is checked against the database (a cache miss, so
an Argon2id run anyway) learns the verdict in the same statement as the device row. A login
served by the credential cache costs nothing, unless its username failed somewhere in the
last hour: every process hears of such failures (bus.LoginFailed) and then asks first.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from smsnodes_hub.auth.accounts import USERNAME_RE, Executor
from smsnodes_hub.bus import LoginFailed
from smsnodes_hub.db import FAILED

log = logging.getLogger(__name__)

DEVICE = "device"  # phones and API callers (their passwords)
OPERATOR = "operator"  # the dashboard's operators
NOBODY = ""  # the username key of names no account can have
T = TypeVar("T")
# Forget a failure record this long after its last failure (or the end of its lockout).
FORGET_AFTER = 3600.0
PRUNE_EVERY = 60.0  # seconds
_MAX_ENTRIES = 100_000


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


def username_key(username: str | None) -> str:
    # A name no account can have is not kept as given: the caller chooses it (up to the body
    # limit, NUL included), and it could not log in anyway.
    return username if username is not None and USERNAME_RE.match(username) else NOBODY


class Throttled(Exception):
    """Too many failed logins: this one is not checked. `retry_after` is in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Limits:
    per_address: int  # security.login_max_failures
    per_username: int  # security.login_max_failures_per_username
    lockout: float  # security.login_lockout_seconds


@dataclass(frozen=True, slots=True)
class Verdict:
    wait: int | None  # seconds until this login may be checked; None: now
    failures: int  # this address's current failures for this username


# The SQL of a verdict, for a statement that needs it beside other columns ($1 scope,
# $2 username, $3 address): see logins.Authenticator.
VERDICT = "login_refusal($1, $2, $3)"


class LoginThrottle:
    """The rules above, for every scope. State is in the database; this object remembers
    only which usernames failed lately (`suspect`), to know when a cached login must ask."""

    __slots__ = ("_suspects", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._suspects: dict[tuple[str, str], float] = {}

    # -- Which usernames failed lately ------------------------------------------------------

    def suspect(self, scope: str, username: str) -> bool:
        until = self._suspects.get((scope, username))
        if until is None:
            return False
        if until < time.monotonic():
            del self._suspects[(scope, username)]
            return False
        return True

    def on_failed(self, event: LoginFailed) -> None:
        """A bus handler: some process counted a failure of this username."""
        self._note(event.scope, event.username, event.seconds)

    async def resync(self, db: Executor) -> None:
        """After the bus was down (and at start): learn again which usernames failed."""
        rows = await db.fetch(
            """SELECT scope, username, extract(epoch FROM max(forget_at) - now()) AS left
                 FROM login_failures WHERE username <> '' AND forget_at > now()
                GROUP BY scope, username""")
        for row in rows:
            self._note(row["scope"], row["username"], float(row["left"]))

    def _note(self, scope: str, username: str, seconds: float) -> None:
        now = time.monotonic()
        if len(self._suspects) >= _MAX_ENTRIES:
            self._suspects = {k: v for k, v in self._suspects.items() if v >= now}
        key = (scope, username)
        self._suspects[key] = max(self._suspects.get(key, 0.0), now + seconds)

    # -- The database -----------------------------------------------------------------------

    async def verdict(self, db: Executor, scope: str, username: str, address: str) -> Verdict:
        row = await db.fetchrow(f"SELECT wait, failures FROM {VERDICT}",  # noqa: S608 - constant
                                scope, username_key(username), client_key(address))
        assert row is not None
        return Verdict(row["wait"], row["failures"])

    async def failure(self, db: Executor, scope: str, username: str, address: str) -> None:
        """Count a failed login. Raises Throttled when it was refused meanwhile (another
        process locked it out): not counted, and answered as refused."""
        name = username_key(username)
        wait = await db.fetchval(
            "SELECT record_login_failure($1, $2, $3, $4, $5, $6, $7)",
            scope, name, client_key(address), self.limits.per_address,
            self.limits.per_username, self.limits.lockout, FORGET_AFTER,
        )
        if name:  # this process need not wait for its own notification
            self._note(scope, name, FORGET_AFTER)
        if wait is not None:
            raise Throttled(wait)

    async def forget(self, db: Executor, scope: str, username: str, address: str) -> None:
        """A right password: this address's failures for the username are forgotten (the
        username's own count runs out by itself: the owner's success must not reset what a
        botnet has spent)."""
        await db.execute(
            "DELETE FROM login_failures WHERE scope = $1 AND username = $2 AND address = $3",
            scope, username_key(username), client_key(address))

    async def guarded(self, db: Executor, scope: str, username: str, address: str,
                      check: Callable[[], Awaitable[T | None]]) -> T | None:
        """`check()` (a password check: None for wrong) under the throttle, for logins
        without a cache of their own (the dashboard's). Raises Throttled."""
        found = await self.verdict(db, scope, username, address)
        if found.wait is not None:
            raise Throttled(found.wait)
        result = await check()
        if result is None:
            await self.failure(db, scope, username, address)
        elif found.failures:
            await self.forget(db, scope, username, address)
        return result

    async def prune(self, db: Executor) -> None:
        await db.execute("DELETE FROM login_failures WHERE forget_at <= now()")

    async def keep_pruning(self, db: Executor, period: float = PRUNE_EVERY) -> None:
        """Delete records past their time, forever (every process does; it is cheap)."""
        while True:
            try:
                await self.prune(db)
            except FAILED as exc:
                log.warning("login throttle: old records not deleted: %s", exc)
            await asyncio.sleep(period)


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
