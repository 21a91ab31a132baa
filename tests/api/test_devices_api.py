"""POST/GET /api/devices and DELETE /api/devices/{id}: an account's phones over HTTP
(ACCOUNTS.md "Managing phones"), with real phones on real sockets."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.support import (
    NUMBER,
    PASSWORD,
    add_account,
    add_device,
    add_phone,
    basic,
    get,
    until,
    ws_url,
)
from tests.wsclient import RawPhone

ACME = basic("acme")


async def post_device(hub: TestClient, body: Any, headers: dict[str, str] = ACME,
                      status: int = 201) -> Any:
    resp = await hub.post("/api/devices", json=body, headers=headers)
    answer = await resp.json()
    assert resp.status == status, answer
    return answer


async def test_the_account_adds_a_phone_that_logs_in_and_shares_its_data(hub: TestClient
                                                                         ) -> None:
    await add_account(hub, "acme")
    new = await post_device(hub, {"username": "acme-1", "password": "phone one password"})
    assert new["username"] == "acme-1" and new["online"] is False
    assert (new["queued"], new["inFlight"], new["sentToday"]) == (0, 0, 0)
    listed = await get(hub, "/api/devices", ACME)
    assert listed["data"] == [new]
    # The phone logs in with its own password; what it is sent, the account reads.
    phone = await RawPhone.login(ws_url(hub), "acme-1", "phone one password")
    try:
        resp = await hub.post("/api/send-sms", json={
            "deviceUsername": "acme-1", "password": "phone one password",
            "phoneNumbers": [NUMBER], "message": "for the account's eyes"})
        sent = await resp.json()
        [frame] = await phone.recv_sms(1)
        assert frame["message"] == "for the account's eyes"
        seen = await get(hub, f"/api/messages/{sent['messageId']}", ACME)
        assert seen["message"] == "for the account's eyes"
    finally:
        await phone.close()


async def test_adding_a_phone_refuses_bad_input_taken_names_and_phones(
    hub: TestClient, pool: asyncpg.Pool,
) -> None:
    await add_account(hub, "acme")
    await add_phone(hub, "acme", "acme-1")
    await add_device(hub, "solo")
    bad = [
        ({}, "username and password are required"),
        ({"username": "acme-2"}, "username and password are required"),
        ({"username": "a b", "password": PASSWORD},
         "username must be 3 to 64 characters: letters, digits, '.', '_' or '-'"),
        ({"username": 7, "password": PASSWORD},
         "username must be 3 to 64 characters: letters, digits, '.', '_' or '-'"),
        ({"username": "acme-2", "password": "short"}, "password must be at least 8 characters"),
    ]
    for body, error in bad:
        answer = await post_device(hub, body, status=400)
        assert answer == {"error": error, "code": "invalid_request"}
    for taken in ("acme", "acme-1", "solo"):
        answer = await post_device(hub, {"username": taken, "password": PASSWORD}, status=409)
        assert answer["code"] == "conflict" and "already exists" in answer["error"], answer
    # A phone's credentials cannot add phones, not even the phone that shares its name
    # with its account; nor can no credentials.
    for headers in (basic("acme-1"), basic("solo")):
        answer = await post_device(hub, {"username": "acme-2", "password": PASSWORD},
                                   headers, status=403)
        assert answer["code"] == "forbidden"
    await post_device(hub, {"username": "acme-2", "password": PASSWORD}, {}, status=401)
    resp = await hub.post("/api/devices", data=b"[]", headers=ACME)
    assert resp.status == 400
    assert await pool.fetchval("SELECT count(*) FROM devices") == 2


async def test_the_list_shows_each_phone_s_load(hub: TestClient) -> None:
    await add_account(hub, "acme")
    await add_phone(hub, "acme", "acme-1")
    await add_phone(hub, "acme", "acme-2")
    for n in range(3):
        resp = await hub.post("/api/send-sms", headers=basic("acme-1"), json={
            "phoneNumbers": [NUMBER], "message": f"m{n}"})
        assert resp.status == 200

    def load(listed: Any) -> dict[str, tuple[int, int, int, bool]]:
        return {d["username"]: (d["queued"], d["inFlight"], d["sentToday"], d["online"])
                for d in listed["data"]}

    assert load(await get(hub, "/api/devices", ACME)) == {
        "acme-1": (3, 0, 0, False), "acme-2": (0, 0, 0, False)}
    phone = await RawPhone.login(ws_url(hub), "acme-1", PASSWORD)
    try:
        frames = await phone.recv_sms(3)
        await phone.send({"type": "status", "ref": "s", "id": frames[0]["id"], "to": NUMBER,
                          "status": "sent"})
        await phone.recv_type("ok")
        # Any credential of the account lists its phones.
        assert load(await get(hub, "/api/devices", basic("acme-2"))) == {
            "acme-1": (0, 2, 1, True), "acme-2": (0, 0, 0, False)}
    finally:
        await phone.close()


async def test_removing_a_phone_ends_its_login_and_cancels_what_was_pinned_to_it(
    hub: TestClient, pool: asyncpg.Pool,
) -> None:
    await add_account(hub, "acme")
    doomed = await add_phone(hub, "acme", "acme-1")
    await add_phone(hub, "acme", "acme-2")
    phone = await RawPhone.login(ws_url(hub), "acme-1", PASSWORD)
    token = phone.auth["token"]
    sent_first = await hub.post("/api/send-sms", headers=basic("acme-1"), json={
        "phoneNumbers": [NUMBER], "message": "sent before"})
    done_id = (await sent_first.json())["messageId"]
    [frame] = await phone.recv_sms(1)
    await phone.send({"type": "status", "ref": "s", "id": frame["id"], "to": NUMBER,
                      "status": "sent"})
    await phone.recv_type("ok")
    await phone.send({"type": "heartbeat", "battery": 50})  # nothing acked after this one
    pinned = await hub.post("/api/send-sms", headers=basic("acme-1"), json={
        "phoneNumbers": [NUMBER], "message": "pinned, never acked"})
    pinned_id = (await pinned.json())["messageId"]
    await phone.recv_sms(1)

    # Only the account removes, and only its own phones.
    assert (await hub.delete(f"/api/devices/{doomed}", headers=basic("acme-2"))).status == 403
    await add_device(hub, "stranger")
    resp = await hub.delete(f"/api/devices/{doomed}", headers=basic("stranger"))
    assert resp.status == 403
    await add_account(hub, "other")
    resp = await hub.delete(f"/api/devices/{doomed}", headers=basic("other"))
    assert resp.status == 404 and (await resp.json())["error"] == f"Device {doomed} not found"

    resp = await hub.delete(f"/api/devices/{doomed}", headers=ACME)
    assert (await resp.json()) == {"id": doomed, "removed": True}
    try:
        assert await phone.closed_with(timeout=10) == 4401
    finally:
        await phone.session.close()
    again = await RawPhone.connect(ws_url(hub))
    try:
        await again.send({"type": "auth", "token": token})
        assert (await again.recv())["type"] == "auth_failed"
    finally:
        await again.session.close()
    await get(hub, "/api/devices", basic("acme-1"), status=401)
    cancelled = await get(hub, f"/api/messages/{pinned_id}", ACME)
    assert cancelled["status"] == "cancelled"
    kept = await get(hub, f"/api/messages/{done_id}", ACME)
    assert kept["status"] == "sent" and kept["message"] == "sent before"
    assert [d["username"] for d in (await get(hub, "/api/devices", ACME))["data"]] == [
        "acme-2"]
    await until(lambda: pool.fetchval("SELECT count(*) = 0 FROM device_sessions"))
