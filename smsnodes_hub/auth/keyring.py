"""Which accounts' data keys this process holds in memory right now, and for how long.

Webhook payloads carry the decrypted text and numbers only while the account's key is in
memory: while the account's phone is connected to this process, or for a while after the
owner's script authenticated; without it they are sent without them (webhooks/payloads.py).
Keys are never written anywhere."""

from __future__ import annotations

import time
from collections.abc import Callable

from smsnodes_hub.auth.accounts import Principal


class KeyRing:
    __slots__ = ("_live", "_recent", "_ttl")

    def __init__(self, ttl_seconds: float, live: Callable[[], list[Principal]]) -> None:
        self._ttl = ttl_seconds
        self._live = live  # principals of the phones connected here
        self._recent: dict[int, tuple[Principal, float]] = {}

    def remember(self, principal: Principal) -> None:
        if self._ttl > 0:
            self._recent[principal.account_id] = (principal, time.monotonic() + self._ttl)

    def forget_device(self, device_id: int) -> None:
        self._recent = {k: v for k, v in self._recent.items() if v[0].device_id != device_id}

    def forget_account(self, account_id: int) -> None:
        self._recent.pop(account_id, None)

    def get(self, account_id: int) -> Principal | None:
        for principal in self._live():
            if principal.account_id == account_id:
                return principal
        entry = self._recent.get(account_id)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            del self._recent[account_id]
            return None
        return entry[0]

    def accounts(self) -> list[int]:
        now = time.monotonic()
        self._recent = {k: v for k, v in self._recent.items() if v[1] >= now}
        return sorted({p.account_id for p in self._live()} | set(self._recent))
