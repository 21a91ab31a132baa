"""`"sim": 1|2` in send-sms (ACCOUNTS.md "Sending"): validated, stored, and carried in every
`sms` frame of the message as `"sim": N`; without it the frame is exactly as before."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from smsnodes_hub.api.send_sms import SIM_INVALID
from tests.support import NUMBER, PASSWORD, HubFactory, add_device, basic, ws_url
from tests.wsclient import RawPhone


async def post(hub: TestClient, **fields: Any) -> tuple[int, Any]:
    resp = await hub.post("/api/send-sms", json={
        "deviceUsername": "shop-phone-1", "password": PASSWORD, "phoneNumbers": [NUMBER],
        "message": "which SIM?", **fields})
    return resp.status, await resp.json()


async def test_the_chosen_sim_reaches_the_frame_pushed_at_once_and_claimed_later(
    hub: TestClient, pool: asyncpg.Pool,
) -> None:
    await add_device(hub, "shop-phone-1")
    # Stored while the phone is away: the claim at login carries it.
    status, waiting = await post(hub, sim=2)
    assert status == 200, waiting
    assert await pool.fetchval("SELECT sim FROM messages WHERE id = $1",
                               waiting["messageId"]) == 2
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    try:
        [claimed] = await phone.recv_sms(1)
        assert claimed["id"] == waiting["messageId"] and claimed["sim"] == 2
        await phone.ack(claimed)
        # Pushed during the request (written straight to the connection): carried too.
        status, now = await post(hub, sim=1)
        assert status == 200 and now["sentImmediately"] is True, now
        [pushed] = await phone.recv_sms(1)
        assert pushed["id"] == now["messageId"] and pushed["sim"] == 1
        await phone.ack(pushed)
        # Without `sim` (the seed's request), or with null, the frame has no such field.
        for extra in ({}, {"sim": None}):
            status, plain = await post(hub, **extra)
            assert status == 200, plain
            [frame] = await phone.recv_sms(1)
            assert frame["id"] == plain["messageId"] and "sim" not in frame, frame
            await phone.ack(frame)
    finally:
        await phone.close()


async def test_a_retry_goes_from_the_same_sim(make_hub: HubFactory) -> None:
    hub = await make_hub(SMSNODES_DELIVERY_RETRY_BACKOFF="0.05",
                         SMSNODES_DELIVERY_RETRY_BACKOFF_MAX="0.1")
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    try:
        status, sent = await post(hub, sim=2)
        assert status == 200, sent
        [first] = await phone.recv_sms(1)
        await phone.ack(first)
        await phone.send({"type": "status", "ref": "f", "id": first["id"], "to": NUMBER,
                          "status": "failed", "error": "RESULT_ERROR_NO_SERVICE"})
        await phone.recv_type("ok")
        [again] = await phone.recv_sms(1, timeout=10)
        assert (again["id"], again["attempt"], again["sim"]) == (first["id"], 2, 2)
    finally:
        await phone.close()


async def test_a_bad_sim_is_a_400_and_stores_nothing(hub: TestClient, pool: asyncpg.Pool
                                                     ) -> None:
    await add_device(hub, "shop-phone-1")
    for bad in (0, 3, -1, "1", True, 1.0, [1], {"slot": 1}):
        status, body = await post(hub, sim=bad)
        assert (status, body) == (400, {"error": SIM_INVALID, "code": "invalid_request"}), bad
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    # Checked before the password, as every field is.
    resp = await hub.post("/api/send-sms", headers=basic("shop-phone-1", "wrong password"),
                          json={"phoneNumbers": [NUMBER], "message": "x", "sim": 9})
    assert resp.status == 400
