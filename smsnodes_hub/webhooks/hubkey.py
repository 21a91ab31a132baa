"""The hub's webhook key: a second seal on each webhook's signing secret, so that an event can
be signed and delivered while no key of its account is in memory.

The key is `webhooks.secret_key` when set (several machines, one hub), else a random key
made on first use in `database.data_dir/webhook-secrets.key`. It never goes into the
database: a copy of the database alone still opens no secret. Each sealed copy is stored
with the key's id, so a process claims only the deliveries whose secret it can open
(docs/security.md says what this trades)."""

from __future__ import annotations

import hmac
from hashlib import sha256
from pathlib import Path

from smsnodes_hub.auth import crypto
from smsnodes_hub.config import Settings
from smsnodes_hub.keyfile import load_key_file

KEY_FILE = "webhook-secrets.key"
KEY_ID_BYTES = 8


def _aad(account_id: int, webhook_id: int) -> bytes:
    # Bound to the account and the webhook: a sealed secret moved to another row fails.
    return crypto.aad(account_id, f"webhook/{webhook_id}/hub-secret")


class HubKey:
    """One key: seals and opens signing secrets (AES-256-GCM)."""

    __slots__ = ("_key", "key_id")

    def __init__(self, material: bytes) -> None:
        self._key = hmac.new(material, b"smsnodes-hub/v1/webhook-secrets", sha256).digest()
        # Names the key in the database without revealing anything about it.
        self.key_id = hmac.new(self._key, b"key-id", sha256).digest()[:KEY_ID_BYTES]

    def seal(self, secret: str, account_id: int, webhook_id: int) -> bytes:
        return crypto.seal(self._key, secret.encode(), _aad(account_id, webhook_id))

    def open(self, blob: bytes, account_id: int, webhook_id: int) -> str:
        """Raises crypto.DecryptionError for a blob this key did not seal for this row."""
        return crypto.open_sealed(self._key, blob, _aad(account_id, webhook_id)).decode()


class HubKeys:
    """Where this process gets its HubKey: loaded once, and the file made only when a
    secret must be sealed (a hub that never has a webhook leaves no key file behind)."""

    __slots__ = ("_key", "_path", "_secret")

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.webhooks.secret_key
        self._path = Path(settings.database.data_dir) / KEY_FILE
        self._key: HubKey | None = None

    def current(self, *, create: bool) -> HubKey | None:
        """The key; None when there is none yet and `create` is false. Raises KeyFileError
        for a key file that cannot be used."""
        if self._key is None:
            if self._secret:
                self._key = HubKey(self._secret.encode())
            elif create or self._path.exists():
                self._key = HubKey(load_key_file(
                    self._path, what="the webhook secrets' key",
                    loss="webhooks then wait for their account's key once, to be sealed again"))
        return self._key

    def require(self) -> HubKey:
        key = self.current(create=True)
        assert key is not None
        return key
