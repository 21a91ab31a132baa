"""Logins: a device's password (the credential cache, one Argon2id run per burst) or one of
its tokens, and the session tokens handed to phones."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import TypeAlias

import asyncpg

from smsnodes_hub import storable
from smsnodes_hub.auth import crypto, throttle
from smsnodes_hub.auth.accounts import (
    MAX_SESSION_TOKENS,
    Executor,
    Principal,
    could_log_in,
    password_wrap_aad,
    token_wrap_aad,
)
from smsnodes_hub.auth.throttle import DEVICE, LoginThrottle, Throttled, client_key
from smsnodes_hub.batching import SetCommit
from smsnodes_hub.set_statements import Rows, SetStatement

log = logging.getLogger(__name__)

@dataclass(slots=True)
class _CacheEntry:
    principal: Principal
    expires: float


class CredentialCache:
    """Recently verified passwords, keyed by an HMAC of username and password under a
    per-process random key, so the cache never holds a password or a reusable hash of one.
    A wrong password never matches an entry; it always pays for Argon2id."""

    __slots__ = ("_entries", "_key", "_ttl")

    def __init__(self, ttl_seconds: float) -> None:
        self._key = os.urandom(32)
        self._ttl = ttl_seconds
        self._entries: dict[bytes, _CacheEntry] = {}

    def slot(self, username: str, password: str) -> bytes:
        """The key of this username and password in the cache (and of their login in flight)."""
        material = username.encode("utf-8") + b"\x00" + password.encode("utf-8")
        return hmac.new(self._key, material, sha256).digest()

    def get(self, username: str, password: str) -> Principal | None:
        if self._ttl <= 0:
            return None
        slot = self.slot(username, password)
        entry = self._entries.get(slot)
        if entry is None:
            return None
        if entry.expires < time.monotonic():
            del self._entries[slot]
            return None
        return entry.principal

    def put(self, username: str, password: str, principal: Principal) -> None:
        if self._ttl <= 0:
            return
        now = time.monotonic()
        if len(self._entries) > 10_000:
            self._entries = {k: v for k, v in self._entries.items() if v.expires >= now}
        self._entries[self.slot(username, password)] = _CacheEntry(principal, now + self._ttl)

    def forget_device(self, device_id: int) -> None:
        self._entries = {
            k: v for k, v in self._entries.items() if v.principal.device_id != device_id
        }

    def forget_account(self, account_id: int) -> None:
        """The account's own password changed, or the account went: its logins are void
        (its phones' too, to be simple: they cost one more password check)."""
        self._entries = {
            k: v for k, v in self._entries.items() if v.principal.account_id != account_id
        }

    def clear(self) -> None:
        self._entries.clear()


# A fixed salt and cheap-to-store dummy verifier: a login for an unknown username still runs
# Argon2id, so response time does not reveal which usernames exist.
_DUMMY_SALT = b"\x00" * crypto.SALT_BYTES


# Basic credentials name the phone of that name when there is one, else the account of that
# name (ACCOUNTS.md "Sending"): a migrated account shares its name with its first phone, and
# its name keeps meaning the phone. `id` is NULL for the account.
_CREDENTIAL = """(
  SELECT 0 AS k, d.id, d.account_id, d.kdf_salt, d.kdf_memory_kib, d.kdf_iterations,
         d.kdf_lanes, d.verifier, d.wrapped_key, d.credential_epoch
    FROM devices d WHERE d.username = {name}
  UNION ALL
  SELECT 1, NULL::bigint, a.id, a.kdf_salt, a.kdf_memory_kib, a.kdf_iterations, a.kdf_lanes,
         a.verifier, a.wrapped_key, a.credential_epoch
    FROM accounts a WHERE a.name = {name}
  ORDER BY k LIMIT 1)"""
_LOOKUP = f"SELECT c.* FROM {_CREDENTIAL.format(name='$1')} c"  # noqa: S608
# The same row and the throttle's verdict for this address, in one round trip; the
# credential's columns are NULL for a username nobody has.
_LOOKUP_THROTTLED = f"""SELECT r.wait, r.failures, c.*
  FROM {throttle.VERDICT} r LEFT JOIN LATERAL {_CREDENTIAL.format(name='$2')} c ON true"""  # noqa: S608


class _Turns:
    """One at a time per key; a key's lock is dropped as soon as nobody holds or awaits it."""

    __slots__ = ("_locks",)

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


_LOGIN_COLUMNS = """t.id, t.account_id, t.device_id, t.wrapped_key,
       coalesce(d.username, a.name) AS username,
       coalesce(d.credential_epoch, a.credential_epoch) AS credential_epoch"""
# Session tokens, many at once (phones logging in together): one row per lookup, in order,
# NULLs where none matches. A session token's use is recorded with the session it starts
# (device/sessions.py), in that commit: its lookup only reads.
_SESSION_LOOKUPS = SetStatement(f"""
SELECT {_LOGIN_COLUMNS}
  FROM {{lookups}}
  LEFT JOIN tokens t ON t.lookup = i.lookup AND t.kind = 'session'
  LEFT JOIN accounts a ON a.id = t.account_id
  LEFT JOIN devices d ON d.id = t.device_id
 ORDER BY i.n""", lookups=Rows("i", ((1, "bytea", "lookup"),)))  # noqa: S608 - fixed fragments
_API_LOOKUP = f"""
WITH t AS (
    UPDATE tokens SET last_used_at = now() WHERE lookup = $1 AND kind = 'api'
    RETURNING id, account_id, device_id, wrapped_key
)
SELECT {_LOGIN_COLUMNS}
  FROM t JOIN accounts a ON a.id = t.account_id LEFT JOIN devices d ON d.id = t.device_id
"""  # noqa: S608 - fixed fragments

# A batch of session-token lookups, answered by find_sessions.
SessionLookups: TypeAlias = SetCommit[bytes, "asyncpg.Record | None"]


async def find_sessions(db: Executor, lookups: Sequence[bytes]) -> list[asyncpg.Record | None]:
    """The session tokens with these lookups, each None where there is none."""
    return [None if row["id"] is None else row
            for row in await _SESSION_LOOKUPS.fetch(db, list(lookups))]


class Authenticator:
    """Password and token logins for the HTTP API and the device socket. With a `throttle`,
    a password login that names its client `address` is throttled (throttle.py); without one
    (the CLI), or without an address, it is only checked."""

    __slots__ = ("_in_flight", "_turns", "cache", "kdf", "params", "throttle")

    def __init__(
        self, kdf: crypto.PasswordKdf, params: crypto.KdfParams, cache: CredentialCache,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.kdf = kdf
        self.params = params
        self.cache = cache
        self.throttle = throttle
        # Password checks under way, by cache slot and client: a burst of requests with the
        # same credentials (a script's first batch) shares one Argon2id run instead of one
        # each. Per client, since each client has its own throttle verdict.
        self._in_flight: dict[tuple[bytes, str], asyncio.Future[Principal | None]] = {}
        # Throttled checks of one username from one client take turns, so that a burst of
        # guesses sent at once meets the lockout its first ones earn (each sees the failures
        # before it), instead of all passing the verdict before any failure is counted.
        self._turns = _Turns()

    async def login(
        self, db: Executor, username: str, password: str, address: str | None = None
    ) -> Principal | None:
        """The principal for a right password, None for anything else; raises
        throttle.Throttled when this client may not try this username yet. Pass a pool as
        `db`: the check may outlive the caller that started it."""
        guard = self.throttle if address is not None else None
        if not could_log_in(username, password):
            if guard is not None and address is not None:
                await guard.failure(db, DEVICE, username, address)
            return None
        cached = self.cache.get(username, password)
        if cached is not None:
            if guard is not None and address is not None and guard.suspect(DEVICE, username):
                # Failed somewhere lately: the verdict, before a right password is told apart
                # from a wrong one (a cache hit answers faster than Argon2id).
                found = await guard.verdict(db, DEVICE, username, address)
                if found.wait is not None:
                    raise Throttled(found.wait)
                if found.failures:
                    await guard.forget(db, DEVICE, username, address)
            return cached
        key = (self.cache.slot(username, password), client_key(address or ""))
        check = self._in_flight.get(key)
        if check is None:
            check = asyncio.ensure_future(
                self._check_password(db, username, password, address if guard else None))
            self._in_flight[key] = check
            check.add_done_callback(lambda done: self._settled(key, done))
        # Shielded: one caller going away must not cancel the check the others wait for.
        return await asyncio.shield(check)

    def _settled(self, key: tuple[bytes, str],
                 check: asyncio.Future[Principal | None]) -> None:
        if self._in_flight.get(key) is check:
            del self._in_flight[key]
        if not check.cancelled():
            check.exception()  # retrieved here too, in case every waiter went away

    async def _check_password(
        self, db: Executor, username: str, password: str, address: str | None
    ) -> Principal | None:
        if address is None or self.throttle is None:
            return await self._verify(await db.fetchrow(_LOOKUP, username), username, password)
        client = client_key(address)
        async with self._turns.turn((client, username)):
            row = await db.fetchrow(_LOOKUP_THROTTLED, DEVICE, username, client)
            assert row is not None
            if row["wait"] is not None:
                raise Throttled(row["wait"])
            principal = await self._verify(row if row["account_id"] is not None else None,
                                           username, password)
            if principal is None:
                await self.throttle.failure(db, DEVICE, username, address)
            elif row["failures"]:
                await self.throttle.forget(db, DEVICE, username, address)
            return principal

    async def _verify(
        self, row: asyncpg.Record | None, username: str, password: str
    ) -> Principal | None:
        if row is None:
            await self.kdf.derive(password, _DUMMY_SALT, self.params)
            return None
        params = crypto.KdfParams(row["kdf_memory_kib"], row["kdf_iterations"], row["kdf_lanes"])
        keys = await self.kdf.derive(password, row["kdf_salt"], params)
        if not crypto.verifier_matches(row["verifier"], keys.verifier):
            return None
        try:
            data_key = crypto.unwrap_key(
                keys.kek, row["wrapped_key"], password_wrap_aad(row["account_id"], username)
            )
        except crypto.DecryptionError:
            # The password matched, so the stored row was altered or damaged: refuse the login
            # like a wrong password (a 401, not a crash) and tell the operator.
            log.warning(
                "%s %r: the password is right but its stored data key does not open; the "
                "row was altered or damaged (reset the password with --reset)",
                "account" if row["id"] is None else "device", username,
            )
            return None
        principal = Principal.build(
            row["account_id"], row["id"], username, data_key, row["credential_epoch"]
        )
        self.cache.put(username, password, principal)
        return principal

    async def login_token(
        self, db: Executor, token: str, kind: str = "session"
    ) -> Principal | None:
        """A session token (the phone's socket) or an API token (HTTP Bearer): each works
        only where it was issued for."""
        if not plausible_token(token):
            return None
        keys = crypto.token_keys(token)
        if kind == "session":
            [row] = await find_sessions(db, [keys.lookup])
        else:
            row = await db.fetchrow(_API_LOOKUP, keys.lookup)
        return _token_principal(keys, row)

    async def login_session(self, lookups: SessionLookups, token: str) -> Principal | None:
        """login_token of a session token, its lookup batched with those of the other phones
        logging in at the same time (a fleet back after a restart)."""
        if not plausible_token(token):
            return None
        keys = crypto.token_keys(token)
        return _token_principal(keys, await lookups.submit(keys.lookup))


def _token_principal(keys: crypto.TokenKeys, row: asyncpg.Record | None) -> Principal | None:
    """Who the token's row logs in: a token of a phone (pinned) carries the phone's name
    and epoch, an account token (no device) the account's."""
    if row is None:
        return None
    try:
        data_key = crypto.unwrap_key(
            keys.kek, row["wrapped_key"], token_wrap_aad(row["account_id"])
        )
    except crypto.DecryptionError:
        return None
    return Principal.build(
        row["account_id"], row["device_id"], row["username"], data_key,
        row["credential_epoch"], row["id"],
    )


def plausible_token(token: str) -> bool:
    """Shaped like a token the hub issues: anything else logs nobody in, and is never hashed
    (a header's 8-bit bytes arrive as lone surrogates, which UTF-8 cannot encode)."""
    return (token.startswith(crypto.TOKEN_PREFIX) and len(token) <= 200
            and storable.storable(token))


def token_row(principal: Principal, token: str) -> tuple[bytes, bytes]:
    """(lookup, wrapped data key) for storing a freshly issued token of this principal."""
    keys = crypto.token_keys(token)
    return keys.lookup, crypto.wrap_key(
        keys.kek, principal.data_key, token_wrap_aad(principal.account_id)
    )


async def issue_session_token(db: Executor, principal: Principal) -> tuple[str, int] | None:
    """A new session token for the phone and its id; None when the credentials changed
    since the login (the phone must not be handed a token that does not work)."""
    token = crypto.new_token()
    lookup, wrapped = token_row(principal, token)
    token_id = await db.fetchval(
        """WITH new AS (
               INSERT INTO tokens (account_id, device_id, kind, lookup, wrapped_key)
               SELECT $1, $2, 'session', $3, $4
                 FROM devices WHERE id = $2 AND credential_epoch = $5
               RETURNING id
           ), pruned AS (
               DELETE FROM tokens WHERE device_id = $2 AND kind = 'session' AND id NOT IN (
                   SELECT id FROM tokens WHERE device_id = $2 AND kind = 'session'
                   ORDER BY id DESC LIMIT $6)
           )
           SELECT id FROM new""",
        principal.account_id,
        principal.device_id,
        lookup,
        wrapped,
        principal.credential_epoch,
        MAX_SESSION_TOKENS - 1,
    )
    return None if token_id is None else (token, token_id)
