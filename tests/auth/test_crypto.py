"""The encryption-at-rest primitives, and what a tampered database row does to a login."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from smsnodes_hub.auth import accounts, crypto, logins
from smsnodes_hub.auth.logins import Authenticator, CredentialCache
from tests.support import PASSWORD

CHEAP = crypto.KdfParams(memory_kib=8, iterations=1, lanes=1)
# Costly enough (~10-20 ms a run) that a run blocking the event loop would be seen.
NOTICEABLE = crypto.KdfParams(memory_kib=16384, iterations=1, lanes=1)
SALT = bytes(range(crypto.SALT_BYTES))


def flipped(blob: bytes, bit: int) -> bytes:
    data = bytearray(blob)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


def test_seal_open_round_trip() -> None:
    key = crypto.new_data_key()
    aad = crypto.aad(7, "message/text")
    for text in ("", "hello", "héllo ✓ " * 200):
        blob = crypto.seal(key, text.encode(), aad)
        assert text.encode() not in blob or text == ""
        assert crypto.open_sealed(key, blob, aad) == text.encode()


def test_every_flipped_bit_of_a_ciphertext_is_rejected() -> None:
    key = crypto.new_data_key()
    aad = crypto.aad(1, "message/text")
    blob = crypto.seal(key, b"meet at noon", aad)
    # Nonce (first 12 bytes), body and tag (last 16 bytes): every single bit.
    for bit in range(len(blob) * 8):
        with pytest.raises(crypto.DecryptionError):
            crypto.open_sealed(key, flipped(blob, bit), aad)
    for cut in (blob[:-1], blob[1:], blob[: crypto.NONCE_BYTES + 15], b""):
        with pytest.raises(crypto.DecryptionError):
            crypto.open_sealed(key, cut, aad)


def test_every_flipped_bit_of_a_wrapped_key_is_rejected() -> None:
    kek, data_key = crypto.new_data_key(), crypto.new_data_key()
    aad = crypto.aad(3, "wrap/token")
    wrapped = crypto.wrap_key(kek, data_key, aad)
    assert crypto.unwrap_key(kek, wrapped, aad) == data_key
    for bit in range(len(wrapped) * 8):
        with pytest.raises(crypto.DecryptionError):
            crypto.unwrap_key(kek, flipped(wrapped, bit), aad)


def test_wrong_password_neither_verifies_nor_unwraps() -> None:
    right = crypto.derive_password_keys(PASSWORD, SALT, CHEAP)
    assert right == crypto.derive_password_keys(PASSWORD, SALT, CHEAP)  # deterministic
    assert right.verifier != right.kek
    data_key = crypto.new_data_key()
    aad = crypto.aad(5, "wrap/password/phone")
    wrapped = crypto.wrap_key(right.kek, data_key, aad)
    for wrong_password, salt in ((PASSWORD + "!", SALT), ("Correct horse battery", SALT),
                                 (PASSWORD, bytes(crypto.SALT_BYTES))):
        wrong = crypto.derive_password_keys(wrong_password, salt, CHEAP)
        assert not crypto.verifier_matches(right.verifier, wrong.verifier)
        with pytest.raises(crypto.DecryptionError):
            crypto.unwrap_key(wrong.kek, wrapped, aad)
    assert crypto.verifier_matches(right.verifier, right.verifier)
    assert crypto.unwrap_key(right.kek, wrapped, aad) == data_key


def test_ciphertext_moved_to_another_account_or_purpose_fails() -> None:
    key = crypto.new_data_key()
    blob = crypto.seal(key, b"+15551234567", crypto.aad(1, "message/number"))
    for account, purpose in ((2, "message/number"), (11, "message/number"),
                             (1, "message/text"), (1, "inbound/sender")):
        with pytest.raises(crypto.DecryptionError):
            crypto.open_sealed(key, blob, crypto.aad(account, purpose))
    # A wrapped key cannot be opened as a payload of the same account either.
    wrapped = crypto.wrap_key(key, crypto.new_data_key(), crypto.aad(1, "message/text"))
    with pytest.raises(crypto.DecryptionError):
        crypto.open_sealed(key, wrapped, crypto.aad(1, "message/text"))


def test_nonces_never_repeat() -> None:
    key = crypto.new_data_key()
    aad = crypto.aad(1, "message/text")
    nonces = {crypto.seal(key, b"same text", aad)[: crypto.NONCE_BYTES] for _ in range(10_000)}
    assert len(nonces) == 10_000


def test_token_keys_are_distinct_and_deterministic() -> None:
    token = crypto.new_token()
    assert token.startswith(crypto.TOKEN_PREFIX) and len(token) >= 40
    keys = crypto.token_keys(token)
    assert keys == crypto.token_keys(token)
    assert keys.lookup != keys.kek
    assert len(keys.lookup) == len(keys.kek) == crypto.KEY_BYTES
    other = crypto.token_keys(crypto.new_token())
    assert other.lookup != keys.lookup and other.kek != keys.kek
    # The stored lookup hash must not be the key that unwraps the token's copy of the data key.
    data_key = crypto.new_data_key()
    wrapped = crypto.wrap_key(keys.kek, data_key, b"t")
    with pytest.raises(crypto.DecryptionError):
        crypto.unwrap_key(keys.lookup, wrapped, b"t")


async def test_kdf_runs_off_the_loop_with_bounded_concurrency(monkeypatch) -> None:
    active = peak = 0
    lock = threading.Lock()
    real = crypto.derive_password_keys

    def watched(password: str, salt: bytes, params: crypto.KdfParams) -> crypto.PasswordKeys:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            return real(password, salt, params)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(crypto, "derive_password_keys", watched)
    kdf = crypto.PasswordKdf(2)
    ticks = 0
    running = True

    async def ticker() -> None:
        nonlocal ticks
        while running:
            await asyncio.sleep(0.001)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    await asyncio.sleep(0.005)
    ticks = 0
    try:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(kdf.derive(f"password {i}", SALT, NOTICEABLE) for i in range(6))
        )
        elapsed = time.perf_counter() - started
    finally:
        running = False
        await tick_task
        kdf.close()
    assert peak == 2, f"at most 2 Argon2id runs at once, saw {peak}"
    assert kdf.runs == 6
    assert results[3] == real("password 3", SALT, NOTICEABLE)
    # Had a run blocked the loop, the 1 ms ticker would barely have moved meanwhile.
    assert ticks >= 3 and ticks >= elapsed / 0.001 / 10, (ticks, elapsed)


# -- Through the database ------------------------------------------------------------------


def _authenticator() -> Authenticator:
    return Authenticator(crypto.PasswordKdf(1), CHEAP, CredentialCache(0))


async def test_tampered_wrapped_key_refuses_login_without_crashing(pool, caplog) -> None:
    auth = _authenticator()
    async with pool.acquire() as conn:
        device_id = await accounts.create_device(conn, auth.kdf, CHEAP, "phone-t", PASSWORD)
    before = await auth.login(pool, "phone-t", PASSWORD)
    assert before is not None and before.device_id == device_id
    wrapped = await pool.fetchval("SELECT wrapped_key FROM devices WHERE id = $1", device_id)
    await pool.execute("UPDATE devices SET wrapped_key = $2 WHERE id = $1",
                       device_id, flipped(wrapped, 100))

    with caplog.at_level(logging.WARNING, logger="smsnodes_hub.auth.logins"):
        assert await auth.login(pool, "phone-t", PASSWORD) is None
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "phone-t" in warning and "altered" in warning
    assert PASSWORD not in caplog.text and before.data_key.hex() not in caplog.text

    # A password change with the current password cannot recover the key either: it says so
    # and leaves the row as it was.
    async with pool.acquire() as conn:
        with pytest.raises(accounts.AccountError, match="--reset"):
            await accounts.change_password(conn, auth.kdf, CHEAP, "phone-t", PASSWORD,
                                           "another password")
    assert await pool.fetchval("SELECT credential_epoch FROM devices WHERE id = $1",
                               device_id) == before.credential_epoch
    auth.kdf.close()


async def test_tampered_verifier_or_salt_refuses_login(pool) -> None:
    auth = _authenticator()
    async with pool.acquire() as conn:
        await accounts.create_device(conn, auth.kdf, CHEAP, "phone-v", PASSWORD)
    for column in ("verifier", "kdf_salt"):
        original = await pool.fetchval(f"SELECT {column} FROM devices")  # noqa: S608
        await pool.execute(f"UPDATE devices SET {column} = $1", flipped(original, 3))  # noqa: S608
        assert await auth.login(pool, "phone-v", PASSWORD) is None
        await pool.execute(f"UPDATE devices SET {column} = $1", original)  # noqa: S608
        assert await auth.login(pool, "phone-v", PASSWORD) is not None
    auth.kdf.close()


async def test_tampered_token_row_refuses_token_login(pool) -> None:
    auth = _authenticator()
    async with pool.acquire() as conn:
        await accounts.create_device(conn, auth.kdf, CHEAP, "phone-k", PASSWORD)
    principal = await auth.login(pool, "phone-k", PASSWORD)
    assert principal is not None
    token, _ = await logins.issue_session_token(pool, principal)  # type: ignore[misc]
    via_token = await auth.login_token(pool, token)
    assert via_token is not None and via_token.data_key == principal.data_key
    wrapped = await pool.fetchval("SELECT wrapped_key FROM tokens")
    await pool.execute("UPDATE tokens SET wrapped_key = $1", flipped(wrapped, 200))
    assert await auth.login_token(pool, token) is None
    # A token of the same shape that was never issued finds nothing.
    assert await auth.login_token(pool, crypto.new_token()) is None
    auth.kdf.close()


async def test_stored_payload_is_bound_to_its_account(pool) -> None:
    auth = _authenticator()
    async with pool.acquire() as conn:
        await accounts.create_device(conn, auth.kdf, CHEAP, "phone-a", PASSWORD)
        await accounts.create_device(conn, auth.kdf, CHEAP, "phone-b", PASSWORD)
    a = await auth.login(pool, "phone-a", PASSWORD)
    b = await auth.login(pool, "phone-b", PASSWORD)
    assert a is not None and b is not None and a.data_key != b.data_key
    blob = a.seal("secret text", "message/text")
    assert a.open(blob, "message/text") == "secret text"
    with pytest.raises(crypto.DecryptionError):
        b.open(blob, "message/text")
    with pytest.raises(crypto.DecryptionError):
        a.open(blob, "message/number")
    auth.kdf.close()


async def test_duplicate_name_leaves_nothing_behind(pool) -> None:
    auth = _authenticator()
    async with pool.acquire() as conn:
        await accounts.create_device(conn, auth.kdf, CHEAP, "phone-u", PASSWORD)
        with pytest.raises(accounts.AccountError, match="already exists"):
            await accounts.create_device(conn, auth.kdf, CHEAP, "phone-u", "other password")
    assert await pool.fetchval("SELECT count(*) FROM accounts") == 1
    assert await auth.login(pool, "phone-u", PASSWORD) is not None
    auth.kdf.close()


async def test_concurrent_logins_with_one_password_share_one_argon2id_run(pool) -> None:
    auth = _authenticator()  # no cache: only the sharing of a check in flight can save runs
    async with pool.acquire() as conn:
        await accounts.create_device(conn, auth.kdf, CHEAP, "phone-burst", PASSWORD)
    runs = auth.kdf.runs
    results = await asyncio.gather(
        *(auth.login(pool, "phone-burst", PASSWORD) for _ in range(20)))
    assert all(r is not None and r.data_key == results[0].data_key for r in results)
    assert auth.kdf.runs == runs + 1

    # Wrong passwords are never answered from another password's check.
    runs = auth.kdf.runs
    mixed = await asyncio.gather(
        auth.login(pool, "phone-burst", PASSWORD),
        auth.login(pool, "phone-burst", "wrong password 1"),
        auth.login(pool, "phone-burst", "wrong password 2"),
    )
    assert mixed[0] is not None and mixed[1] is None and mixed[2] is None
    assert auth.kdf.runs == runs + 3

    # A caller that gives up does not cancel the check the others wait for.
    first = asyncio.ensure_future(auth.login(pool, "phone-burst", PASSWORD))
    second = asyncio.ensure_future(auth.login(pool, "phone-burst", PASSWORD))
    await asyncio.sleep(0)
    first.cancel()
    assert await second is not None
    auth.kdf.close()


def test_argon2id_runs_in_several_threads_at_once() -> None:
    """Logins run Argon2id on a thread pool, several at once (no lock any more): they must all
    finish, with the same keys as one alone (several lanes in parallel threads made
    cryptography's Argon2id hang or raise MemoryError; argon2-cffi has no such fault)."""
    params = crypto.KdfParams(memory_kib=8192, iterations=1, lanes=4)
    expected = crypto.derive_password_keys(PASSWORD, SALT, params)
    results: list[crypto.PasswordKeys] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(4):
                results.append(crypto.derive_password_keys(PASSWORD, SALT, params))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads), "Argon2id hung in concurrent threads"
    assert errors == []
    assert results == [expected] * 12


# Keys derived before the switch to argon2-cffi (cryptography's Argon2id, version 0x13), for
# the password and salt below: existing accounts keep logging in only if these stay.
VECTOR_PASSWORD = "correct horse battery \u2713"
VECTOR_PARAMS = crypto.KdfParams(memory_kib=1024, iterations=2, lanes=2)
VECTOR_MASTER = "2e7971289e73c3bec5c1149fd2c90f0bd5c31eb48ff920a98e00b89e97ecf305"
VECTOR_VERIFIER = "7eb7299135a6ed32fc359b83a2979f8bfe9222336494fe8f73b6b9cceef71817"
VECTOR_KEK = "e4456e861e32e3aa7ad43718aa4acaabf93af5f38c991d8962da829e08c27f65"


def test_derived_keys_are_those_of_the_previous_implementation() -> None:
    assert crypto.argon2id(VECTOR_PASSWORD.encode(), SALT, VECTOR_PARAMS).hex() == VECTOR_MASTER
    keys = crypto.derive_password_keys(VECTOR_PASSWORD, SALT, VECTOR_PARAMS)
    assert (keys.verifier.hex(), keys.kek.hex()) == (VECTOR_VERIFIER, VECTOR_KEK)
    # And against that implementation itself (still installed: cryptography does AES-GCM and
    # HKDF), for the default costs and the tests' cheap ones.
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    for params in (crypto.KdfParams(65536, 3, 4), CHEAP, crypto.KdfParams(4096, 1, 8)):
        old = Argon2id(salt=SALT, length=32, iterations=params.iterations, lanes=params.lanes,
                       memory_cost=params.memory_kib).derive(PASSWORD.encode())
        assert crypto.argon2id(PASSWORD.encode(), SALT, params) == old, params


def test_the_kdf_runs_one_derivation_per_core_by_default() -> None:
    kdf = crypto.PasswordKdf()
    try:
        assert kdf.concurrency == crypto.cpu_count() >= 1
    finally:
        kdf.close()
    kdf = crypto.PasswordKdf(3)
    assert kdf.concurrency == 3
    kdf.close()

