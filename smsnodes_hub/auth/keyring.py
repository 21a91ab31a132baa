"""Which accounts' data keys this process holds in memory right now, and for how long.

Webhook payloads carry the decrypted text and numbers only while the account's key is in
memory: while the account's phone is connected to this process, or for a while after the
owner's script authenticated; without it they are sent without them (webhooks/payloads.py).
Keys are never written anywhere."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from smsnodes_hub.auth.accounts import Principal


class KeyRing:
    __slots__ = ("_accounts", "_accounts_at", "_generation", "_index", "_index_at", "_live",
                 "_recent", "_recent_changes", "_ttl")

    def __init__(self, ttl_seconds: float, live: Callable[[], Iterable[Principal]],
                 generation: Callable[[], int]) -> None:
        self._ttl = ttl_seconds
        self._live = live  # principals of the phones connected here
        self._generation = generation  # changes whenever `live` would answer otherwise
        self._recent: dict[int, tuple[Principal, float]] = {}
        self._recent_changes = 0  # accounts joining or leaving _recent
        # Derived from `live`, rebuilt only when its generation moved.
        self._index: dict[int, Principal] = {}
        self._index_at = -1
        self._accounts: list[int] = []
        self._accounts_at: tuple[int, int] | None = None

    def remember(self, principal: Principal) -> None:
        if self._ttl > 0:
            if principal.account_id not in self._recent:
                self._recent_changes += 1
            self._recent[principal.account_id] = (principal, time.monotonic() + self._ttl)

    def forget_device(self, device_id: int) -> None:
        self._keep_recent(lambda entry: entry[0].device_id != device_id)

    def forget_account(self, account_id: int) -> None:
        if self._recent.pop(account_id, None) is not None:
            self._recent_changes += 1

    def get(self, account_id: int) -> Principal | None:
        principal = self._live_index().get(account_id)
        if principal is not None:
            return principal
        entry = self._recent.get(account_id)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            self.forget_account(account_id)
            return None
        return entry[0]

    def accounts(self) -> list[int]:
        """The accounts whose keys are here, in order (a new list only when it changed)."""
        now = time.monotonic()
        self._keep_recent(lambda entry: entry[1] >= now)
        self._live_index()
        at = (self._index_at, self._recent_changes)
        if at != self._accounts_at:
            self._accounts = sorted(self._index.keys() | self._recent.keys())
            self._accounts_at = at
        return self._accounts

    def _live_index(self) -> dict[int, Principal]:
        generation = self._generation()
        if generation != self._index_at:
            # Every phone of an account holds the account's one data key: any will do.
            self._index = {p.account_id: p for p in self._live()}
            self._index_at = generation
        return self._index

    def _keep_recent(self, keep: Callable[[tuple[Principal, float]], bool]) -> None:
        kept = {k: v for k, v in self._recent.items() if keep(v)}
        if len(kept) != len(self._recent):
            self._recent = kept
            self._recent_changes += 1
