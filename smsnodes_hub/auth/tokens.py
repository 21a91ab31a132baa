"""API tokens: long-lived Bearer credentials for scripts, each with its own wrapped copy of
the account's data key. Created with the password (the data key must be open to wrap it),
shown once, listed by name, revoked by id; all die with a password change."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from smsnodes_hub.auth import crypto
from smsnodes_hub.auth.accounts import Executor, Principal
from smsnodes_hub.auth.logins import Authenticator, plausible_token, token_row
from smsnodes_hub.errors import Conflict

MAX_NAME = 100
MAX_API_TOKENS = 100  # per device: plenty for scripts, bounded against runaway creation


class TokenError(Conflict):
    """A token request that cannot be done; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    kind: str  # 'api' (Bearer for scripts) or 'session' (a phone's login)
    name: str | None
    created_at: datetime
    last_used_at: datetime | None
    device: str | None = None  # the phone it belongs to; None: the account's own


async def create_api_token(
    db: Executor, principal: Principal, name: str | None
) -> tuple[TokenInfo, str]:
    """Returns the token's description and the token itself, which is never shown again."""
    check_name(name)
    token = crypto.new_token()
    lookup, wrapped = token_row(principal, token)
    # A phone's token is pinned to it; the account's (no device) routes its sends.
    row = await db.fetchrow(
        """INSERT INTO tokens (account_id, device_id, kind, name, lookup, wrapped_key)
           SELECT $1, $2, 'api', $3, $4, $5
            WHERE CASE WHEN $2::bigint IS NULL
                       THEN EXISTS (SELECT 1 FROM accounts WHERE id = $1 AND credential_epoch = $6)
                       ELSE EXISTS (SELECT 1 FROM devices WHERE id = $2 AND credential_epoch = $6)
                  END
              AND (SELECT count(*) FROM tokens
                    WHERE account_id = $1 AND kind = 'api'
                      AND (device_id = $2 OR ($2 IS NULL AND device_id IS NULL))) < $7
           RETURNING id, kind, name, created_at, last_used_at,
                     (SELECT username FROM devices WHERE id = $2) AS device""",
        principal.account_id,
        principal.device_id,
        name,
        lookup,
        wrapped,
        principal.credential_epoch,
        MAX_API_TOKENS,
    )
    if row is None:
        raise TokenError(
            f"cannot create a token: the credentials changed, or the "
            f"{'account' if principal.is_account else 'device'} has {MAX_API_TOKENS} tokens "
            "already (revoke some)"
        )
    return TokenInfo(**dict(row)), token


def check_name(name: str | None) -> None:
    if name is not None and (not name.strip() or len(name) > MAX_NAME):
        raise ValueError(f"name must be 1 to {MAX_NAME} characters")


# Whose tokens a call is about ($1 device, $2 account, $3 the account's own only): the
# device's, or the account's own, or every token of the account.
_HELD_BY = """CASE WHEN $1::bigint IS NOT NULL THEN t.device_id = $1
                   WHEN $3::boolean THEN t.account_id = $2 AND t.device_id IS NULL
                   ELSE t.account_id = $2 END"""


async def list_tokens(db: Executor, device_id: int | None,
                      account_id: int | None = None, *, own: bool = False) -> list[TokenInfo]:
    """The device's API tokens and its phone sessions (so either can be revoked by id); with
    `device_id` None, every token of `account_id`: its own and its phones', or with `own`
    only its own (the routed ones, which belong to no phone)."""
    rows = await db.fetch(
        f"""SELECT t.id, t.kind, t.name, t.created_at, t.last_used_at, d.username AS device
              FROM tokens t LEFT JOIN devices d ON d.id = t.device_id
             WHERE {_HELD_BY}
             ORDER BY t.id""",  # noqa: S608 - a fixed condition
        device_id, account_id, own,
    )
    return [TokenInfo(**dict(r)) for r in rows]


async def revoke_token(db: Executor, device_id: int | None, token_id: int,
                       account_id: int | None = None, *, own: bool = False) -> bool:
    """Delete a token of this device (API or session), or with `device_id` None any token of
    `account_id` (with `own`, only one of the account's own), and tell every hub process,
    so cached logins and sockets that used it end now."""
    revoked = await db.fetchval(
        f"""WITH gone AS (
                DELETE FROM tokens t WHERE t.id = $4 AND {_HELD_BY}
                RETURNING id)
            SELECT id FROM gone, pg_notify('smsnodes_hub', 'token:' || gone.id)""",  # noqa: S608 - a fixed condition
        device_id,
        account_id,
        own,
        token_id,
    )
    return revoked is not None


async def revoke_session_tokens(db: Executor, device_id: int) -> int:
    """End every phone session of the device (the next login needs the password)."""
    rows = await db.fetch(
        """WITH gone AS (DELETE FROM tokens WHERE device_id = $1 AND kind = 'session'
                         RETURNING id)
           SELECT id, pg_notify('smsnodes_hub', 'token:' || id) FROM gone""",
        device_id,
    )
    return len(rows)


@dataclass(slots=True)
class _Cached:
    principal: Principal
    expires: float


class BearerCache:
    """Recently used API tokens, so a script's thousandth request costs no database round
    trip for its login. Keyed by the token's lookup hash (not the token). A revoked token
    is dropped through the bus at once, and can never send: the message insert checks it."""

    __slots__ = ("_entries", "_ttl")

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._entries: dict[bytes, _Cached] = {}

    async def login(self, auth: Authenticator, db: Executor, token: str) -> Principal | None:
        if not plausible_token(token):
            return None
        key = crypto.token_keys(token).lookup
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit.expires > now:
            return hit.principal
        principal = await auth.login_token(db, token, kind="api")
        if principal is not None and self._ttl > 0:
            if len(self._entries) > 10_000:
                self._entries = {k: v for k, v in self._entries.items() if v.expires > now}
            self._entries[key] = _Cached(principal, now + self._ttl)
        return principal

    def forget_token(self, token_id: int) -> None:
        self._entries = {
            k: v for k, v in self._entries.items() if v.principal.token_id != token_id
        }

    def forget_device(self, device_id: int) -> None:
        self._entries = {
            k: v for k, v in self._entries.items() if v.principal.device_id != device_id
        }

    def forget_account(self, account_id: int) -> None:
        self._entries = {
            k: v for k, v in self._entries.items() if v.principal.account_id != account_id
        }

    def clear(self) -> None:
        """The bus was down: a revocation may have been missed, so trust no entry."""
        self._entries.clear()
