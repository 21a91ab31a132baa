"""sql/014 on a database that the schema before it populated: every device account becomes an
account of the same name owning that one phone, and every password, token, message, received
SMS and webhook keeps working (ACCOUNTS.md "Model", "Migration")."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from smsnodes_hub import db
from smsnodes_hub.app import create_app, kdf_params
from smsnodes_hub.appkeys import POOL as POOL_KEY
from smsnodes_hub.auth import crypto, owners, tokens
from smsnodes_hub.auth.accounts import Principal
from smsnodes_hub.auth.crypto import PasswordKdf
from smsnodes_hub.config import load_settings
from smsnodes_hub.messaging.messages import (
    INBOUND_SENDER_PURPOSE,
    INBOUND_TEXT_PURPOSE,
    NUMBER_PURPOSE,
    TEXT_PURPOSE,
)
from smsnodes_hub.webhooks.signing import SECRET_PURPOSE
from tests.support import (
    CHEAP_KDF_ENV,
    NUMBER,
    PASSWORD,
    basic,
    create_database,
    drop_database,
    test_settings,
    ws_url,
)
from tests.wsclient import RawPhone

FIRST_NEW = 14  # the migration that gives accounts names and passwords


@pytest.fixture
async def old_database(admin_dsn: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database migrated only up to the schema before accounts had names."""
    name = f"m_{uuid.uuid4().hex[:16]}"
    dsn = await create_database(admin_dsn, name)
    before = tmp_path / "sql-before"
    before.mkdir()
    for migration in db.migrations():
        if migration.version < FIRST_NEW:
            shutil.copy(migration.path, before / migration.path.name)
    conn = await asyncpg.connect(dsn)
    try:
        await db.migrate(conn, before)
    finally:
        await conn.close()
    yield dsn
    await drop_database(admin_dsn, name)


async def populate_as_before(dsn: str) -> dict[str, Any]:
    """Rows as the hub before sql/014 wrote them: a device account with its password, an API
    token, a phone session, a queued message, a received SMS and a webhook."""
    params = kdf_params(load_settings(None, CHEAP_KDF_ENV))
    kdf = PasswordKdf(1)
    try:
        keys = await kdf.derive(PASSWORD, salt := crypto.new_salt(), params)
    finally:
        kdf.close()
    data_key = crypto.new_data_key()
    conn = await asyncpg.connect(dsn)
    try:
        account_id = await conn.fetchval("INSERT INTO accounts DEFAULT VALUES RETURNING id")
        device_id = await conn.fetchval(
            """INSERT INTO devices (account_id, username, kdf_salt, kdf_memory_kib,
                   kdf_iterations, kdf_lanes, verifier, wrapped_key)
               VALUES ($1, 'old-phone', $2, $3, $4, $5, $6, $7) RETURNING id""",
            account_id, salt, params.memory_kib, params.iterations, params.lanes,
            keys.verifier, crypto.wrap_key(
                keys.kek, data_key, crypto.aad(account_id, "wrap/password/old-phone")))
        principal = Principal.build(account_id, device_id, "old-phone", data_key, 1)
        tokens = {}
        for kind in ("api", "session"):
            token = crypto.new_token()
            token_keys = crypto.token_keys(token)
            await conn.execute(
                """INSERT INTO tokens (account_id, device_id, kind, name, lookup, wrapped_key)
                   VALUES ($1, $2, $3, 'before', $4, $5)""",
                account_id, device_id, kind, token_keys.lookup,
                crypto.wrap_key(token_keys.kek, data_key, crypto.aad(account_id, "wrap/token")))
            tokens[kind] = token
        message_id = await conn.fetchval(
            """INSERT INTO messages (account_id, device_id, priority, state, status, body,
                                     recipient_count)
               VALUES ($1, $2, 3, 'queued', 'queued', $3, 1) RETURNING id""",
            account_id, device_id, principal.seal("written before", TEXT_PURPOSE))
        await conn.execute(
            """INSERT INTO recipients (message_id, position, number, number_mac)
               VALUES ($1, 1, $2, $3)""",
            message_id, principal.seal(NUMBER, NUMBER_PURPOSE), principal.number_mac(NUMBER))
        await conn.execute("INSERT INTO message_events (message_id, status, attempt) "
                           "VALUES ($1, 'queued', 1)", message_id)
        await conn.execute(
            """INSERT INTO inbound_messages (account_id, device_id, ref, sender, body,
                                             received_at, sender_mac)
               VALUES ($1, $2, 'in-1', $3, $4, now(), $5)""",
            account_id, device_id, principal.seal(NUMBER, INBOUND_SENDER_PURPOSE),
            principal.seal("a reply from before", INBOUND_TEXT_PURPOSE),
            principal.number_mac(NUMBER))
        await conn.execute(
            """INSERT INTO webhooks (account_id, url, events, secret)
               VALUES ($1, 'https://93.184.216.34/hooks', '{sms.received}', $2)""",
            account_id, principal.seal("whsec_before", SECRET_PURPOSE))
    finally:
        await conn.close()
    return {"account_id": account_id, "device_id": device_id, "message_id": message_id,
            **tokens}


async def test_a_database_of_device_accounts_keeps_every_credential_and_row(
    old_database: str, aiohttp_client: Any, tmp_path: Path,
) -> None:
    before = await populate_as_before(old_database)
    conn = await asyncpg.connect(old_database)
    try:
        applied = await db.migrate(conn)
        assert FIRST_NEW in [m.version for m in applied]
        account = await conn.fetchrow("SELECT * FROM accounts")
        device = await conn.fetchrow("SELECT * FROM devices")
    finally:
        await conn.close()
    # The account takes its device's name and a copy of its password credential.
    assert account["name"] == "old-phone" and account["id"] == before["account_id"]
    assert (account["verifier"], account["wrapped_key"]) == (device["verifier"],
                                                             device["wrapped_key"])

    settings = test_settings(old_database, SMSNODES_DATABASE_DATA_DIR=str(tmp_path / "data"))
    hub: TestClient = await aiohttp_client(TestServer(
        create_app(settings, old_database, migrate=False), host="127.0.0.1"))
    message_path = f"/api/messages/{before['message_id']}"
    bearer = {"Authorization": f"Bearer {before['api']}"}
    for headers in (basic("old-phone"), bearer):  # the password, and the old API token
        resp = await hub.get(message_path, headers=headers)
        body = await resp.json()
        assert resp.status == 200, body
        assert body["message"] == "written before" and body["recipients"][0]["to"] == NUMBER
    inbound = await (await hub.get("/api/inbound", headers=bearer)).json()
    assert [m["message"] for m in inbound["data"]] == ["a reply from before"]
    hooks = await (await hub.get("/api/webhooks", headers=basic("old-phone"))).json()
    assert [h["url"] for h in hooks["data"]] == ["https://93.184.216.34/hooks"]
    # Basic with the name still means the phone, so the seed's body sends exactly as before.
    resp = await hub.post("/api/send-sms", json={
        "deviceUsername": "old-phone", "password": PASSWORD, "phoneNumbers": [NUMBER],
        "message": "after"})
    assert resp.status == 200, await resp.text()
    device_view = await (await hub.get("/api/device", headers=basic("old-phone"))).json()
    assert device_view["id"] == before["device_id"]

    # The phone's old session token logs in, and the message stored before decrypts for it.
    phone = await RawPhone.connect(ws_url(hub))
    try:
        await phone.send({"type": "auth", "token": before["session"]})
        assert (await phone.recv())["type"] == "auth_ok"
        frames = await phone.recv_sms(2)
        assert {f["message"] for f in frames} == {"written before", "after"}
    finally:
        await phone.close()

    # The account's own password is the phone's old one: it opens the same data key, so an
    # account token made with it reads what the phone stored.
    kdf = PasswordKdf(1)
    try:
        owner = await owners.login_account(hub.app[POOL_KEY], kdf,
                                           kdf_params(settings), "old-phone", PASSWORD)
    finally:
        kdf.close()
    assert owner is not None and owner.is_account
    assert owner.account_id == before["account_id"]
    _info, account_token = await tokens.create_api_token(hub.app[POOL_KEY], owner, "acct")
    resp = await hub.get(message_path, headers={"Authorization": f"Bearer {account_token}"})
    assert (await resp.json())["message"] == "written before"

