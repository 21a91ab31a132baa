"""Where a delivery's signing secret comes from: the copy sealed with the hub's webhook key
(hubkey.py), which needs no account key, or else the account's own copy while its key is
in memory, which then gives the webhook a hub copy too."""

from __future__ import annotations

import logging

import asyncpg

from smsnodes_hub.auth.accounts import Principal
from smsnodes_hub.auth.crypto import DecryptionError
from smsnodes_hub.auth.keyring import KeyRing
from smsnodes_hub.keyfile import KeyFileError
from smsnodes_hub.webhooks import store
from smsnodes_hub.webhooks.hubkey import HubKeys
from smsnodes_hub.webhooks.signing import SECRET_PURPOSE

log = logging.getLogger(__name__)


class Secrets:
    """One per delivery worker. Remembers which accounts' webhooks it has sealed for the hub,
    so each account costs one query per process."""

    __slots__ = ("_sealed", "keyring", "keys", "pool")

    def __init__(self, pool: asyncpg.Pool, keyring: KeyRing, keys: HubKeys) -> None:
        self.pool = pool
        self.keyring = keyring
        self.keys = keys
        self._sealed: set[int] = set()

    def key_id(self) -> bytes | None:
        """The id of this process's hub key; None while there is none (no webhook yet)."""
        key = self.keys.current(create=False)
        return None if key is None else key.key_id

    async def seal_for_hub(self, accounts: list[int]) -> None:
        """Give the webhooks of these accounts (whose keys are here) a copy of their secret
        under the hub's key where they have none: registered before migration 012, or
        sealed by a process with another key."""
        fresh = [a for a in accounts if a not in self._sealed]
        if not fresh:
            return
        rows = await store.without_hub_secret(self.pool, fresh, self.key_id())
        done = set(fresh)
        for row in rows:
            principal = self.keyring.get(row["account_id"])
            if principal is None:  # left memory meanwhile: next time
                done.discard(row["account_id"])
                continue
            try:
                secret = principal.open(row["secret"], SECRET_PURPOSE)
            except DecryptionError:
                log.warning("webhook %s: its stored signing secret does not open", row["id"])
                continue
            await self._store_hub_copy(row["account_id"], row["id"], secret)
        self._sealed |= done

    async def for_delivery(self, row: asyncpg.Record, principal: Principal | None) -> str | None:
        """The signing secret of a claimed delivery's webhook: its hub copy when this
        process's key sealed it, else the account's copy (with `principal`). None when
        neither opens here. Raises DecryptionError when the account's copy does not open."""
        key = self.keys.current(create=False)
        if key is not None and row["hub_key_id"] == key.key_id:
            try:
                return key.open(row["hub_secret"], row["account_id"], row["webhook_id"])
            except DecryptionError:
                log.warning("webhook %s: the hub's copy of its signing secret does not open",
                            row["webhook_id"])
                if principal is None:
                    # Not claimed again and again: it waits for the account's key instead.
                    await self.pool.execute(
                        "UPDATE webhooks SET hub_secret = NULL, hub_key_id = NULL "
                        "WHERE id = $1 AND hub_key_id = $2", row["webhook_id"], key.key_id)
                    return None
        if principal is None:
            return None
        secret = principal.open(row["secret"], SECRET_PURPOSE)
        await self._store_hub_copy(row["account_id"], row["webhook_id"], secret)
        return secret

    async def _store_hub_copy(self, account_id: int, webhook_id: int, secret: str) -> None:
        try:
            key = self.keys.require()
        except KeyFileError as exc:
            log.error("webhook %s: cannot seal its secret for the hub: %s", webhook_id, exc)
            return
        other = await store.store_hub_secret(self.pool, account_id, webhook_id, key, secret)
        if other:
            log.warning("webhook %s: its signing secret was sealed with another hub key "
                        "(id %s), now with this process's: every hub process must share one "
                        "key (webhooks.secret_key, or the same database.data_dir)",
                        webhook_id, other)
