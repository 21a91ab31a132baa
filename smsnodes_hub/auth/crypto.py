"""Encryption at rest: Argon2id, HKDF, AES-256-GCM envelopes and tokens.

Scheme (see docs/security.md):
- password --Argon2id(salt)--> 32 bytes --HKDF--> login verifier (stored) and
  key-encryption key (never stored);
- each account has a random 256-bit data key, stored only wrapped (AES-GCM)
  by a password's or a token's key-encryption key;
- payloads are AES-256-GCM under the data key with a fresh 96-bit nonce and
  associated data naming the owner and the purpose, so a ciphertext moved to
  another account or field fails to open;
- tokens are 256-bit random secrets: the database keeps an HKDF-derived lookup
  hash and a copy of the data key wrapped under another HKDF derivation, so a
  reconnect costs microseconds, not an Argon2id run.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from hashlib import sha256

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SCHEME = "AES-256-GCM with user-derived keys"
NONCE_BYTES = 12
KEY_BYTES = 32
SALT_BYTES = 16
TOKEN_PREFIX = "snh_"  # noqa: S105 - a prefix, not a secret


class DecryptionError(Exception):
    """A ciphertext or wrapped key was tampered with, moved, or opened with the wrong key."""


@dataclass(frozen=True, slots=True)
class KdfParams:
    memory_kib: int
    iterations: int
    lanes: int


@dataclass(frozen=True, slots=True)
class PasswordKeys:
    verifier: bytes
    kek: bytes


def _hkdf(secret: bytes, info: bytes, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=info).derive(secret)


def argon2id(secret: bytes, salt: bytes, params: KdfParams) -> bytes:
    """Argon2id (version 0x13) of `secret`, 32 bytes: the reference implementation through
    argon2-cffi, which releases the GIL, so runs in several threads proceed on several cores.
    (cryptography's Argon2id, used before, gives the same bytes but had to take turns under
    one lock: with several lanes in parallel threads it hung or raised MemoryError.)"""
    return hash_secret_raw(
        secret, salt, time_cost=params.iterations, memory_cost=params.memory_kib,
        parallelism=params.lanes, hash_len=KEY_BYTES, type=Type.ID,
    )


def derive_password_keys(password: str, salt: bytes, params: KdfParams) -> PasswordKeys:
    """One Argon2id run, split into a verifier and a key-encryption key. CPU-bound."""
    master = argon2id(password.encode("utf-8"), salt, params)
    return PasswordKeys(
        verifier=_hkdf(master, b"smsnodes-hub/v1/login-verifier"),
        kek=_hkdf(master, b"smsnodes-hub/v1/key-encryption-key"),
    )


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def verifier_matches(expected: bytes, candidate: bytes) -> bool:
    return hmac.compare_digest(expected, candidate)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM: nonce || ciphertext || tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < NONCE_BYTES + 16:
        raise DecryptionError("ciphertext too short")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise DecryptionError("ciphertext rejected") from None


def wrap_key(kek: bytes, data_key: bytes, aad: bytes) -> bytes:
    return seal(kek, data_key, b"wrap:" + aad)


def unwrap_key(kek: bytes, wrapped: bytes, aad: bytes) -> bytes:
    return open_sealed(kek, wrapped, b"wrap:" + aad)


# -- Tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenKeys:
    lookup: bytes  # stored, indexed: finds the token's row
    kek: bytes  # never stored: unwraps the token's copy of the data key


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_keys(token: str) -> TokenKeys:
    raw = token.encode("utf-8")
    return TokenKeys(
        lookup=_hkdf(raw, b"smsnodes-hub/v1/token-lookup"),
        kek=_hkdf(raw, b"smsnodes-hub/v1/token-key-encryption-key"),
    )


# -- Per-account derived keys ---------------------------------------------------------------


def number_mac_key(data_key: bytes) -> bytes:
    """Key for the keyed hash of phone numbers: lets the hub match a status report's `to`
    without storing the number in clear."""
    return _hkdf(data_key, b"smsnodes-hub/v1/number-mac")


def number_mac(mac_key: bytes, number: str) -> bytes:
    return hmac.new(mac_key, number.encode("utf-8"), sha256).digest()


def idempotency_key(data_key: bytes) -> bytes:
    """Key for fingerprints of send requests (Idempotency-Key): separate from the number
    MAC key so neither use can be turned against the other."""
    return _hkdf(data_key, b"smsnodes-hub/v1/idempotency")


def aad(account_id: int, purpose: str) -> bytes:
    """Associated data binding a ciphertext to its owner and what it holds."""
    return f"smsnodes-hub/v1/{account_id}/{purpose}".encode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


# -- Argon2id off the event loop ------------------------------------------------------------


def cpu_count() -> int:
    """The cores this process may run on (its affinity, where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class PasswordKdf:
    """Runs Argon2id in a thread pool so the event loop never waits on it: `concurrency`
    runs at once (0: one per core), each on its own core, so that logins after an outage go
    as fast as the machine allows; the bound keeps a burst of logins from exhausting memory
    (each run takes `argon2_memory_kib`)."""

    __slots__ = ("_executor", "_semaphore", "concurrency", "runs")

    def __init__(self, concurrency: int = 0) -> None:
        self.concurrency = concurrency or cpu_count()
        self._executor = ThreadPoolExecutor(max_workers=self.concurrency,
                                            thread_name_prefix="argon2")
        self._semaphore = asyncio.Semaphore(self.concurrency)
        self.runs = 0

    async def derive(self, password: str, salt: bytes, params: KdfParams) -> PasswordKeys:
        async with self._semaphore:
            self.runs += 1
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._executor, derive_password_keys, password, salt, params
            )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
