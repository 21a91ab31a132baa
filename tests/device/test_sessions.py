"""Sessions that start together (a fleet back after a restart) start in one statement
(device/sessions.py register_all), each login still answered on its own."""

from __future__ import annotations

import asyncio
import uuid

from smsnodes_hub.appkeys import HUB
from smsnodes_hub.batching import SetCommit
from smsnodes_hub.device import sessions
from smsnodes_hub.device.protocol import CloseCode
from tests.support import PASSWORD, add_device, basic, get, send, ws_url
from tests.wsclient import RawPhone


async def _epoch(pool, device_id: int) -> int:
    return await pool.fetchval("SELECT credential_epoch FROM devices WHERE id = $1", device_id)


async def _held_since_an_hour(pool) -> tuple[int, uuid.UUID]:
    """A phone whose session a process (of its own, not a hub's) holds, its row last
    written an hour ago: (device id, process id)."""
    device_id = await add_device(pool, "shop-phone-1")
    process = uuid.uuid4()
    await sessions.register_process(pool, process)
    await sessions.register(pool, process, sessions.Registration(
        device_id, uuid.uuid4(), "127.0.0.1", await _epoch(pool, device_id)))
    await pool.execute("UPDATE devices SET last_seen_at = now() - interval '1 hour'")
    return device_id, process


async def test_one_statement_starts_many_sessions_but_not_one_with_stale_credentials(pool):
    ids = [await add_device(pool, f"fleet-phone-{i}") for i in range(4)]
    process = uuid.uuid4()
    await sessions.register_process(pool, process)
    conns = [uuid.uuid4() for _ in ids]
    items = [sessions.Registration(d, c, "127.0.0.1", await _epoch(pool, d), model="Pixel 8")
             for d, c in zip(ids, conns, strict=True)]
    items[2] = sessions.Registration(ids[2], conns[2], "127.0.0.1", items[2].credential_epoch - 1)
    results = await sessions.register_all(pool, process, items)
    assert [r is not None for r in results] == [True, True, False, True]
    rows = await pool.fetch("SELECT device_id, connection_id FROM device_sessions")
    assert {r["device_id"]: r["connection_id"] for r in rows} == {
        ids[k]: conns[k] for k in (0, 1, 3)}
    models = await pool.fetch("SELECT id, model, announced_online FROM devices ORDER BY id")
    assert [(r["model"], r["announced_online"]) for r in models] == [
        ("Pixel 8", True), ("Pixel 8", True), (None, False), ("Pixel 8", True)]


async def test_a_device_twice_in_one_batch_ends_with_its_later_connection(pool):
    # The upsert cannot touch one row twice in a statement: the lane runs the batch again
    # one item at a time, in order, and each caller still gets its own answer.
    one, two = await add_device(pool, "fleet-phone-1"), await add_device(pool, "fleet-phone-2")
    process = uuid.uuid4()
    await sessions.register_process(pool, process)
    lane: SetCommit[sessions.Registration, sessions.Registered | None] = SetCommit(
        pool, lambda conn, items: sessions.register_all(conn, process, items),
        name="logins", atomic=True)
    first, later, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    blocker = await pool.acquire()
    try:
        # Hold the lane's first batch on a lock so the three logins queue up together.
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM devices WHERE id = $1 FOR UPDATE", two)
        waiting = asyncio.ensure_future(lane.submit(
            sessions.Registration(two, uuid.uuid4(), None, await _epoch(pool, two))))
        await asyncio.sleep(0.2)
        together = [asyncio.ensure_future(lane.submit(sessions.Registration(
            d, c, None, await _epoch(pool, d)))) for d, c in ((one, first), (one, later),
                                                              (two, other))]
        await asyncio.sleep(0.1)
        await tx.commit()
    finally:
        await pool.release(blocker)
    assert await waiting is not None
    assert all(r is not None for r in await asyncio.gather(*together))
    rows = await pool.fetch("SELECT device_id, connection_id FROM device_sessions")
    assert {r["device_id"]: r["connection_id"] for r in rows} == {one: later, two: other}
    assert lane.stats.retried == 1  # the shared statement, refused once


async def test_a_phone_back_with_its_session_token_shows_when_it_was_last_used(hub):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    token = phone.auth["token"]
    await phone.close()
    before = await _session_token(hub)
    back = await RawPhone.connect(ws_url(hub))
    await back.send({"type": "auth", "token": token})
    assert (await back.recv())["type"] == "auth_ok"
    after = await _session_token(hub)
    assert after["lastUsedAt"] is not None and after["lastUsedAt"] > before["lastUsedAt"]
    await send(hub, text="still delivered")
    [frame] = await back.recv_sms(1)
    assert frame["message"] == "still delivered"
    await back.close()


async def _session_token(hub) -> dict[str, object]:
    body = await get(hub, "/api/tokens", headers=basic())
    [session] = [t for t in body["data"] if t["kind"] == "session"]
    return session


async def test_phones_that_close_together_get_back_what_they_held_on_their_next_login(hub):
    # Their sessions end in one statement: each phone's un-acked message waits for it again,
    # the same id and attempt, and no phone gets another's.
    names = [f"fleet-phone-{i}" for i in range(3)]
    for name in names:
        await add_device(hub, name)
    phones = await asyncio.gather(*(RawPhone.login(ws_url(hub), n, PASSWORD) for n in names))
    held = {}
    for name, phone in zip(names, phones, strict=True):
        sent = await send(hub, name, text=f"for {name}")
        [frame] = await phone.recv_sms(1)  # not acked
        held[name] = (sent["messageId"], frame["attempt"])
    await asyncio.gather(*(p.close() for p in phones))
    again = await asyncio.gather(*(RawPhone.login(ws_url(hub), n, PASSWORD) for n in names))
    for name, phone in zip(names, again, strict=True):
        [frame] = await phone.recv_sms(1)
        assert (frame["id"], frame["attempt"]) == held[name]
        assert frame["message"] == f"for {name}"
    await asyncio.gather(*(p.close() for p in again))


async def test_a_phone_logging_in_while_the_hub_stops_is_told_to_try_again(hub):
    # The hub's login lanes close first on the way down: a token login then is not
    # refused as a bad token, nor left to an unhandled error, but told 1013 (try again).
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    token = phone.auth["token"]
    await phone.close()
    await hub.app[HUB].lookups.close()
    late = await RawPhone.connect(ws_url(hub))
    await late.send({"type": "auth", "token": token})
    assert await late.closed_with() == CloseCode.TRY_AGAIN


async def test_a_connected_phone_is_seen_at_each_heartbeat_without_its_row_written(hub, pool):
    # 10,000 idle phones used to cost 2,000 row updates a second: the process's beat
    # (an unlogged row) is their sighting now.
    device_id = await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    the_hub = hub.app[HUB]
    before = await pool.fetchrow("SELECT xmin::text, last_seen_at FROM devices WHERE id = $1",
                                 device_id)
    await asyncio.sleep(0.05)
    await the_hub._beat()
    after = await pool.fetchrow("SELECT xmin::text, last_seen_at FROM devices WHERE id = $1",
                                device_id)
    assert after == before  # the device's row is not written
    beat_at = await pool.fetchval("SELECT heartbeat_at FROM hub_processes WHERE id = $1",
                                  the_hub.process_id)
    assert beat_at > before["last_seen_at"]
    shown = (await get(hub, "/api/device", basic()))["lastSeenAt"]  # in milliseconds
    assert shown == beat_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    await phone.close()


async def test_the_phones_of_a_dead_process_were_last_seen_at_its_last_beat(hub, pool):
    device_id, dead = await _held_since_an_hour(pool)
    last_beat = await pool.fetchval(
        "UPDATE hub_processes SET heartbeat_at = now() - interval '2 minutes' WHERE id = $1"
        " RETURNING heartbeat_at", dead)
    await hub.app[HUB]._beat()  # a live process sweeps the dead one
    assert await pool.fetchval("SELECT count(*) FROM hub_processes WHERE id = $1", dead) == 0
    assert await pool.fetchval("SELECT count(*) FROM device_sessions") == 0
    assert await pool.fetchval("SELECT last_seen_at FROM devices WHERE id = $1",
                               device_id) == last_beat


async def test_a_process_that_leaves_marks_the_phones_it_still_held_seen(pool):
    device_id, process = await _held_since_an_hour(pool)
    await sessions.leave(pool, process)
    assert await pool.fetchval("SELECT count(*) FROM device_sessions") == 0
    assert await pool.fetchval(
        "SELECT last_seen_at > now() - interval '1 minute' FROM devices WHERE id = $1",
        device_id)


async def test_offline_is_announced_a_grace_period_after_the_phone_was_last_seen(pool):
    # Its row says an hour ago (the login); its session says when its process last beat.
    await _held_since_an_hour(pool)

    async def announced_after(beat_ago: float, grace: float) -> bool:
        await pool.execute(
            "UPDATE hub_processes SET heartbeat_at = now() - make_interval(secs => $1)",
            beat_ago)
        await sessions.announce_offline(pool, grace)
        return not await pool.fetchval("SELECT announced_online FROM devices")

    assert not await announced_after(0, 0)  # live: never, whatever the grace
    assert not await announced_after(30, 60)  # dead, but seen 30 s ago
    assert await announced_after(120, 60)


async def test_a_session_token_revoked_after_its_lookup_starts_no_session(hub, pool):
    # The lookup only reads the token; an operator's "end sessions" can come between it and
    # the session's start. The phone must be refused then, not connected on a dead token.
    device_id = await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    token_id = await pool.fetchval(
        "SELECT id FROM tokens WHERE device_id = $1 AND kind = 'session'", device_id)
    await phone.close()
    await pool.execute("DELETE FROM tokens WHERE id = $1", token_id)
    process = uuid.uuid4()
    await sessions.register_process(pool, process)
    refused = await sessions.register(pool, process, sessions.Registration(
        device_id, uuid.uuid4(), "127.0.0.1", await _epoch(pool, device_id), token_id=token_id))
    assert refused is None
    assert await pool.fetchval("SELECT count(*) FROM device_sessions") == 0
    assert await sessions.register(pool, process, sessions.Registration(
        device_id, uuid.uuid4(), "127.0.0.1", await _epoch(pool, device_id))) is not None
