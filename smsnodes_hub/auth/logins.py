"""Logins: a device's password (the credential cache, one Argon2id run per burst) or one of
its tokens, and the session tokens handed to phones."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from dataclasses import dataclass
from hashlib import sha256

from smsnodes_hub import storable
from smsnodes_hub.auth import crypto
from smsnodes_hub.auth.accounts import (
    MAX_SESSION_TOKENS,
    Executor,
    Principal,
    could_log_in,
    password_wrap_aad,
    token_wrap_aad,
)

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

    def clear(self) -> None:
        self._entries.clear()


# A fixed salt and cheap-to-store dummy verifier: a login for an unknown username still runs
# Argon2id, so response time does not reveal which usernames exist.
_DUMMY_SALT = b"\x00" * crypto.SALT_BYTES


class Authenticator:
    """Password and token logins for the HTTP API and the device socket."""

    __slots__ = ("_in_flight", "cache", "kdf", "params")

    def __init__(
        self, kdf: crypto.PasswordKdf, params: crypto.KdfParams, cache: CredentialCache
    ) -> None:
        self.kdf = kdf
        self.params = params
        self.cache = cache
        # Password checks under way, by cache slot: a burst of requests with the same
        # credentials (a script's first batch) shares one Argon2id run instead of one each.
        self._in_flight: dict[bytes, asyncio.Future[Principal | None]] = {}

    async def login(self, db: Executor, username: str, password: str) -> Principal | None:
        """The principal for a right password, None for anything else. Pass a pool as `db`:
        the check may outlive the caller that started it."""
        if not could_log_in(username, password):
            return None
        cached = self.cache.get(username, password)
        if cached is not None:
            return cached
        slot = self.cache.slot(username, password)
        check = self._in_flight.get(slot)
        if check is None:
            check = asyncio.ensure_future(self._check_password(db, username, password))
            self._in_flight[slot] = check
            check.add_done_callback(lambda done: self._settled(slot, done))
        # Shielded: one caller going away must not cancel the check the others wait for.
        return await asyncio.shield(check)

    def _settled(self, slot: bytes, check: asyncio.Future[Principal | None]) -> None:
        if self._in_flight.get(slot) is check:
            del self._in_flight[slot]
        if not check.cancelled():
            check.exception()  # retrieved here too, in case every waiter went away

    async def _check_password(
        self, db: Executor, username: str, password: str
    ) -> Principal | None:
        row = await db.fetchrow(
            """SELECT id, account_id, kdf_salt, kdf_memory_kib, kdf_iterations, kdf_lanes,
                      verifier, wrapped_key, credential_epoch
                 FROM devices WHERE username = $1""",
            username,
        )
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
                "device %r (id %d): the password is right but its stored data key does not "
                "open; the row was altered or damaged (reset the password with --reset)",
                username, row["id"],
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
        if (not token.startswith(crypto.TOKEN_PREFIX) or len(token) > 200
                or not storable.storable(token)):
            return None
        keys = crypto.token_keys(token)
        row = await db.fetchrow(
            """UPDATE tokens t SET last_used_at = now()
                 FROM devices d
                WHERE t.lookup = $1 AND t.kind = $2 AND d.id = t.device_id
            RETURNING t.id, t.account_id, t.device_id, t.wrapped_key, d.username,
                      d.credential_epoch""",
            keys.lookup,
            kind,
        )
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
