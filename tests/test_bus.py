"""The bus's wire format and its listener's robustness (smsnodes_hub/bus.py)."""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
import pytest

from smsnodes_hub import bus
from tests.support import until

EVERY_EVENT = [
    bus.Work(7),
    bus.Replaced(7, uuid.uuid4()),
    bus.CredentialsChanged(7),
    bus.TokenRevoked(12),
    bus.Withdraw(7, 99),
    bus.PaceChanged(7, 30),
    bus.PaceChanged(7, None),
    bus.Disconnect(7),
    bus.WebhookQueued(),
    bus.LoginFailed("device", 3600, "shop-phone-1"),
]


@pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda e: type(e).__name__)
def test_every_event_survives_encode_and_decode(event: bus.Event) -> None:
    assert bus.decode(bus.encode(event)) == event


def test_the_payloads_sql_builds_decode_to_the_same_events() -> None:
    # Statements that NOTIFY inside themselves write these payloads by hand.
    assert bus.decode("work:5") == bus.Work(5)
    assert bus.decode("credentials:5") == bus.CredentialsChanged(5)
    assert bus.decode("token:9") == bus.TokenRevoked(9)
    assert bus.decode("pace:5:0") == bus.PaceChanged(5, None)
    assert bus.decode("webhook") == bus.WebhookQueued()
    assert bus.decode("login:operator:60:admin") == bus.LoginFailed("operator", 60, "admin")


@pytest.mark.parametrize("payload", ["", "work", "work:x", "work:1:2", "cancel:1", "nope:1",
                                     "replace:1:not-a-uuid", "pace:a:b", "login:device:5:",
                                     "login:device:x:phone"])
def test_malformed_payloads_are_ignored_and_logged(payload: str, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="smsnodes_hub.bus"):
        assert bus.decode(payload) is None
    assert "does not understand" in caplog.text


async def test_handlers_hear_their_events_and_one_failing_does_not_stop_the_others(
        database_url: str, caplog) -> None:
    events = bus.Bus(database_url)
    heard: list[bus.Event] = []

    def broken(_event: bus.Work) -> None:
        raise RuntimeError("handler bug")

    events.subscribe(bus.Work, broken)
    events.subscribe(bus.Work, heard.append)
    events.subscribe(bus.Withdraw, heard.append)
    resynced = asyncio.Event()

    async def resync() -> None:
        resynced.set()

    events.on_resync(resync)
    await events.ensure_listening()
    assert resynced.is_set()  # a first listen is a catch-up too
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT pg_notify($1, 'garbage:::')", bus.CHANNEL)
        await bus.publish(conn, bus.Work(3))
        await bus.publish(conn, bus.Withdraw(3, 4))
        await until(lambda: len(heard) == 2, 5)
    finally:
        await conn.close()
        await events.stop()
    assert heard == [bus.Work(3), bus.Withdraw(3, 4)]
    assert "bus handler for work failed" in caplog.text
