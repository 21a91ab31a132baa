"""Events never wait for a key: with no key of the account in the hub's memory an event goes
out on time, signed with the hub's copy of the secret, without the fields only the
account's key opens (`redacted`). Real hubs, restarts, phones and a real receiver."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from device_sim import SimulatedPhone

from smsnodes_hub.appkeys import KEYRING, POOL
from smsnodes_hub.timefmt import parse_iso
from smsnodes_hub.webhooks.hubkey import KEY_FILE
from tests.support import PASSWORD, add_device, basic, until, ws_url
from tests.webhooks.receiver import LOCAL, NUMBER, Receiver, register
from tests.wsclient import RawPhone

# No cached logins: only a connected phone brings the account's key into memory.
NO_CACHE = {**LOCAL, "SMSNODES_SECURITY_CREDENTIAL_CACHE_SECONDS": "0"}
MESSAGE_EVENTS = ["message.sent", "message.delivered", "message.expired", "message.cancelled"]


async def send(hub: Any, text: str, **extra: Any) -> int:
    resp = await hub.post("/api/send-sms", headers=basic(),
                          json={"phoneNumbers": [NUMBER], "message": text, **extra})
    body = await resp.json()
    assert resp.status == 200, body
    return int(body["messageId"])


async def test_a_message_expiring_while_the_phone_is_offline_is_told_at_once(
        make_hub, receiver: Receiver):
    """The issue's case: a message expires while its phone is offline, after a restart of
    the hub. Its message.expired arrives within a second or two of the expiry, correctly
    signed, without the number and the text."""
    first = await make_hub(**NO_CACHE)
    device_id = await add_device(first, "shop-phone-1")
    await register(first, receiver, MESSAGE_EVENTS)
    message_id = await send(first, "Your code is 884213", ttl=3)
    await first.close()  # the hub restarts; the phone stays away

    hub = await make_hub(**NO_CACHE)
    [event] = await receiver.count("/hook", 1, timeout=15)  # signature verified in count()
    arrived = datetime.now(UTC)
    assert hub.app[KEYRING].accounts() == []  # no key of the account in memory
    assert event["type"] == "message.expired"
    assert event["data"] == {
        "messageId": message_id, "status": "expired", "error": None, "attempt": 1,
        "deviceId": device_id, "username": "shop-phone-1", "redacted": ["to", "message"]}
    # On time: the event was made when the message expired and sent right away.
    assert (arrived - parse_iso(event["createdAt"])).total_seconds() < 2.0
    resp = await hub.get(f"/api/messages/{message_id}", headers=basic())
    assert (await resp.json())["status"] == "expired"  # the rest, from the API


async def test_with_the_key_in_memory_nothing_is_redacted(make_hub, receiver: Receiver):
    hub = await make_hub(**NO_CACHE)
    await add_device(hub, "shop-phone-1")
    await register(hub, receiver, ["message.delivered", "sms.received"])
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        assert hub.app[KEYRING].accounts() != []  # the phone's key is here
        await send(hub, "Parcel at locker 447120")
        await phone.send_inbound("+15557654321", "Thanks!")
        events = await receiver.count("/hook", 2)
    by_type = {e["type"]: e["data"] for e in events}
    assert by_type["message.delivered"]["to"] == NUMBER
    assert by_type["message.delivered"]["message"] == "Parcel at locker 447120"
    assert by_type["sms.received"]["from"] == "+15557654321"
    assert by_type["sms.received"]["message"] == "Thanks!"
    assert [d["redacted"] for d in by_type.values()] == [[], []]


async def test_a_webhook_from_before_the_hub_key_is_sealed_when_its_key_is_next_here(
        make_hub, receiver: Receiver, pool):
    """A webhook registered by a hub version without the hub key has only the account's
    copy of its secret: its events wait for the account's key, as they used to. The first
    time that key is in memory the webhook gets its hub copy, and from then on its events
    never wait."""
    hub = await make_hub(**NO_CACHE)
    await add_device(hub, "shop-phone-1")
    hook = await register(hub, receiver, ["message.cancelled"])
    # As a webhook registered before migration 012 is.
    await pool.execute("UPDATE webhooks SET hub_secret = NULL, hub_key_id = NULL")
    waiting = await send(hub, "cancelled while nobody holds the key")
    assert (await hub.delete(f"/api/messages/{waiting}", headers=basic())).status == 200
    await asyncio.sleep(1.5)
    assert receiver.requests == []  # only the account's key opens this secret: it waits

    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD):
        [complete] = await receiver.count("/hook", 1)
        assert complete["data"]["message"] == "cancelled while nobody holds the key"
        assert await until(lambda: pool.fetchval(
            "SELECT hub_key_id IS NOT NULL FROM webhooks WHERE id = $1", hook["id"]))
    await until(lambda: hub.app[KEYRING].accounts() == [])

    later = await send(hub, "cancelled after the phone left")
    assert (await hub.delete(f"/api/messages/{later}", headers=basic())).status == 200
    [_, redacted] = await receiver.count("/hook", 2, timeout=5)
    assert redacted["data"]["messageId"] == later
    assert redacted["data"]["redacted"] == ["to", "message"]


async def test_a_process_with_another_hub_key_waits_for_the_account_key_then_reseals(
        make_hub, receiver: Receiver, pool, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """Every process must share the hub key. One that has another (a different data_dir)
    cannot open the hub's copy: it delivers only with the account's key, seals the secret
    again with its own key and says so in its log."""
    first = await make_hub(**NO_CACHE, SMSNODES_DATABASE_DATA_DIR=str(tmp_path / "a"))
    await add_device(first, "shop-phone-1")
    hook = await register(first, receiver, ["message.cancelled"])
    assert (tmp_path / "a" / KEY_FILE).is_file()
    sealed_by_first = await pool.fetchval("SELECT hub_key_id FROM webhooks")
    await first.close()

    other = await make_hub(**NO_CACHE, SMSNODES_DATABASE_DATA_DIR=str(tmp_path / "b"))
    message_id = await send(other, "cancelled on the other process")
    assert (await other.delete(f"/api/messages/{message_id}", headers=basic())).status == 200
    await asyncio.sleep(1.5)
    assert receiver.requests == []  # not its key: the event waits for the account's
    caplog.set_level(logging.WARNING, logger="smsnodes_hub.webhooks")
    async with SimulatedPhone(ws_url(other), "shop-phone-1", PASSWORD):
        [event] = await receiver.count("/hook", 1)
    assert event["data"]["message"] == "cancelled on the other process"
    assert await pool.fetchval(
        "SELECT hub_key_id FROM webhooks WHERE id = $1", hook["id"]) != sealed_by_first
    assert any("sealed with another hub key" in r.getMessage() for r in caplog.records)


async def test_processes_on_several_machines_share_the_hub_key_through_secret_key(
        make_hub, receiver: Receiver, tmp_path: Path):
    """webhooks.secret_key stands for the key file: two processes with different data
    folders (machines) but the same secret_key sign each other's webhooks without waiting."""
    shared = {**NO_CACHE, "SMSNODES_WEBHOOKS_SECRET_KEY": "a long shared secret from a vault!"}
    first = await make_hub(**shared, SMSNODES_DATABASE_DATA_DIR=str(tmp_path / "a"))
    await add_device(first, "shop-phone-1")
    await register(first, receiver, ["message.cancelled"])
    await first.close()
    assert not (tmp_path / "a" / KEY_FILE).exists()  # the setting, not a file
    other = await make_hub(**shared, SMSNODES_DATABASE_DATA_DIR=str(tmp_path / "b"))
    message_id = await send(other, "cancelled elsewhere")
    assert (await other.delete(f"/api/messages/{message_id}", headers=basic())).status == 200
    [event] = await receiver.count("/hook", 1, timeout=5)
    assert event["data"]["redacted"] == ["to", "message"]


async def test_the_hub_key_is_a_file_of_the_data_dir_made_only_when_needed(
        make_hub, receiver: Receiver, tmp_path: Path):
    """A hub without webhooks writes no key file; registering one makes it (0600). The key
    never goes into the database (tests/webhooks/test_webhooks.py checks a dump)."""
    hub = await make_hub(**NO_CACHE)
    await add_device(hub, "shop-phone-1")
    key_file = tmp_path / "data" / KEY_FILE
    await send(hub, "no webhook yet")
    await asyncio.sleep(0.6)  # the worker looked at least once
    assert not key_file.exists()
    await register(hub, receiver, ["message.cancelled"])
    assert key_file.is_file() and key_file.stat().st_mode & 0o077 == 0
    started = time.monotonic()
    message_id = await send(hub, "x")
    assert (await hub.delete(f"/api/messages/{message_id}", headers=basic())).status == 200
    [event] = await receiver.count("/hook", 1)
    assert event["data"]["redacted"] == ["to", "message"] and time.monotonic() - started < 3


async def test_the_keys_here_follow_the_phones_that_come_and_go(make_hub):
    # The key ring derives the accounts from the connected phones only when they changed:
    # never a key of a phone that left, never one account's key for another.
    hub = await make_hub(**NO_CACHE)
    a = await add_device(hub, "shop-phone-1")
    b = await add_device(hub, "other-phone-1")
    accounts = {a: await hub.app[POOL].fetchval("SELECT account_id FROM devices WHERE id = $1", a),
                b: await hub.app[POOL].fetchval("SELECT account_id FROM devices WHERE id = $1", b)}
    keyring = hub.app[KEYRING]
    phone_a = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    phone_b = await RawPhone.login(ws_url(hub), "other-phone-1", PASSWORD)
    assert keyring.accounts() == sorted(accounts.values())
    assert keyring.get(accounts[a]).device_id == a
    assert keyring.get(accounts[b]).device_id == b
    await phone_a.close()
    await until(lambda: keyring.accounts() == [accounts[b]])
    assert keyring.get(accounts[a]) is None
    phone_a = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    assert keyring.accounts() == sorted(accounts.values())
    await phone_a.close()
    await phone_b.close()
    await until(lambda: keyring.accounts() == [])
