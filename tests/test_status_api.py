"""The status API: one message with its timeline, the history with filters and pages, and
cancel in each state (HTTP-API.md "GET /api/messages/{id}")."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from device_sim import PhoneBehaviour, SimulatedPhone

from smsnodes_hub.appkeys import POOL

from .conftest import PASSWORD, add_device, ws_url
from .test_delivery import NUMBER, send
from .wsclient import RawPhone


def basic(username: str = "shop-phone-1", password: str = PASSWORD) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def get(client: Any, path: str, headers: dict[str, str] | None = None,
              status: int = 200) -> Any:
    resp = await client.get(path, headers=basic() if headers is None else headers)
    body = await resp.json()
    assert resp.status == status, body
    return body


async def test_timeline_reads_queued_to_delivered_with_monotonic_times(hub):
    await add_device(hub, "shop-phone-1")
    sent = await send(hub, text="track me", numbers=[NUMBER])
    mid = sent["messageId"]
    body = await get(hub, f"/api/messages/{mid}")
    assert body["status"] == "queued" and body["recipients"][0]["status"] == "queued"
    behaviour = PhoneBehaviour(ack_delay=0.05, sent_delay=0.05, delivered_delay=0.05)
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD, behaviour) as phone:
        await phone.wait_for_sms(1)
        await phone.wait_for(lambda: len(phone.reports) == 2 and phone.outbox_size == 0)
    body = await get(hub, f"/api/messages/{mid}")
    assert body["status"] == "delivered"
    assert body["message"] == "track me" and body["recipients"][0]["to"] == NUMBER
    assert body["segments"] == 1 and body["encoding"] == "GSM-7"
    steps = [(e["status"], e["to"]) for e in body["events"]]
    assert steps == [("queued", None), ("dispatched", None), ("accepted", None),
                     ("sent", NUMBER), ("delivered", NUMBER)]
    times = [datetime.fromisoformat(e["at"].replace("Z", "+00:00")) for e in body["events"]]
    assert times == sorted(times) and all(e["at"].endswith("Z") for e in body["events"])
    assert body["createdAt"].endswith("Z") and body["scheduledAt"] is None


async def test_overall_status_partial_and_least_advanced(hub):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    sent = await send(hub, numbers=[NUMBER, "+0987654321"])
    [frame] = await phone.recv_sms(1)
    await phone.send({"type": "status", "ref": 1, "id": frame["id"], "to": NUMBER,
                      "status": "delivered"})
    await phone.recv_type("ok")
    body = await get(hub, f"/api/messages/{sent['messageId']}")
    assert body["status"] == "accepted"  # the other recipient is still with the phone
    await phone.send({"type": "status", "ref": 2, "id": frame["id"], "to": "+0987654321",
                      "status": "failed", "error": "RESULT_ERROR_NULL_PDU"})
    await phone.recv_type("ok")
    body = await get(hub, f"/api/messages/{sent['messageId']}")
    assert body["status"] == "partial"
    assert [(r["status"], r["error"]) for r in body["recipients"]] == [
        ("delivered", None), ("failed", "RESULT_ERROR_NULL_PDU")]
    await phone.close()


async def test_other_accounts_and_bad_ids_get_404(hub):
    await add_device(hub, "shop-phone-1")
    await add_device(hub, "other-phone")
    theirs = await send(hub, "other-phone")
    mine = await send(hub)
    await get(hub, f"/api/messages/{theirs['messageId']}", status=404)
    await get(hub, f"/api/messages/{mine['messageId']}", basic("other-phone"), status=404)
    for bad in ("999999", "abc", "-1", "1.5", "9" * 30):
        body = await get(hub, f"/api/messages/{bad}", status=404)
        assert "not found" in body["error"]
    resp = await hub.delete(f"/api/messages/{theirs['messageId']}", headers=basic())
    assert resp.status == 404
    listing = await get(hub, "/api/messages", basic("other-phone"))
    assert [m["id"] for m in listing["data"]] == [theirs["messageId"]]


async def test_authentication_is_required_and_checked(hub):
    await add_device(hub, "shop-phone-1")
    mine = await send(hub)
    path = f"/api/messages/{mine['messageId']}"
    assert (await get(hub, path, {}, status=401))["error"].startswith("Authentication")
    await get(hub, path, basic(password="wrong password"), status=401)
    await get(hub, path, {"Authorization": "Basic !!!"}, status=401)
    await get(hub, path, {"Authorization": "Bearer snh_nope"}, status=401)


async def test_history_filters_and_pages_over_250_messages(hub):
    await add_device(hub, "shop-phone-1")
    for n in range(250):
        await send(hub, text=f"m{n}", numbers=["+15550000001" if n % 10 == 0 else NUMBER])
    page1 = await get(hub, "/api/messages?per_page=100")
    assert page1["total"] == 250 and page1["totalPages"] == 3 and page1["perPage"] == 100
    assert [m["message"] for m in page1["data"][:3]] == ["m249", "m248", "m247"]
    page3 = await get(hub, "/api/messages?per_page=100&page=3")
    assert len(page3["data"]) == 50 and page3["data"][-1]["message"] == "m0"
    beyond = await get(hub, "/api/messages?per_page=100&page=4")
    assert beyond["data"] == [] and beyond["total"] == 250
    default = await get(hub, "/api/messages")
    assert default["perPage"] == 25 and len(default["data"]) == 25
    by_number = await get(hub, "/api/messages?to=%2B1%20555%20000%200001&per_page=100")
    assert by_number["total"] == 25
    assert all(m["recipients"][0]["to"] == "+15550000001" for m in by_number["data"])
    queued = await get(hub, "/api/messages?status=queued&per_page=1")
    assert queued["total"] == 250
    assert (await get(hub, "/api/messages?status=delivered"))["total"] == 0
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert (await get(hub, f"/api/messages?since={future}"))["total"] == 0
    assert (await get(hub, f"/api/messages?until={future}"))["total"] == 250
    for bad in ("page=0", "page=-1", "page=x", "per_page=101", "per_page=0",
                "status=lost", "since=yesterday", "until=2026-13-01", "to=abc"):
        body = await get(hub, f"/api/messages?{bad}", status=400)
        assert bad.split("=")[0] in body["error"], (bad, body)


async def test_cancel_in_each_state(hub, pool):
    await add_device(hub, "shop-phone-1")
    queued = await send(hub, text="queued")
    resp = await hub.delete(f"/api/messages/{queued['messageId']}", headers=basic())
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "cancelled"
    assert body["events"][-1]["status"] == "cancelled"

    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    await phone.nothing_for(0.3)  # the cancelled message is never pushed
    dispatched = await send(hub, text="dispatched")
    [frame] = await phone.recv_sms(1)
    resp = await hub.delete(f"/api/messages/{dispatched['messageId']}", headers=basic())
    assert resp.status == 200
    assert await phone.recv_type("cancel") == {"type": "cancel", "id": frame["id"]}

    accepted = await send(hub, text="accepted")
    [frame] = await phone.recv_sms(1)
    await phone.ack(frame, ref="a")
    await phone.recv_type("ok")
    resp = await hub.delete(f"/api/messages/{accepted['messageId']}", headers=basic())
    assert resp.status == 200 and (await resp.json())["status"] == "cancelled"
    assert await phone.recv_type("cancel") == {"type": "cancel", "id": frame["id"]}

    done = await send(hub, text="sent")
    [frame] = await phone.recv_sms(1)
    await phone.send({"type": "status", "ref": "s", "id": frame["id"], "to": NUMBER,
                      "status": "sent"})
    await phone.recv_type("ok")
    resp = await hub.delete(f"/api/messages/{done['messageId']}", headers=basic())
    body = await resp.json()
    assert resp.status == 409 and "already sent" in body["error"]
    # A phone that sent it anyway (the cancel came too late) reports the truth.
    await phone.send({"type": "status", "ref": "late", "id": frame["id"] - 1, "to": NUMBER,
                      "status": "sent"})
    await phone.recv_type("ok")
    late = await get(hub, f"/api/messages/{accepted['messageId']}")
    assert late["status"] == "sent"
    await phone.close()


async def test_api_token_lifecycle_and_revocation_mid_connection(hub):
    await add_device(hub, "shop-phone-1")
    resp = await hub.post("/api/tokens", json={"name": "billing script"}, headers=basic())
    created = await resp.json()
    assert resp.status == 201 and created["token"].startswith("snh_")
    bearer = {"Authorization": f"Bearer {created['token']}"}
    # Bearer works where Basic does: sending, reading, listing.
    resp = await hub.post("/api/send-sms", headers=bearer,
                          json={"phoneNumbers": [NUMBER], "message": "via token"})
    assert resp.status == 200, await resp.json()
    mid = (await resp.json())["messageId"]
    assert (await get(hub, f"/api/messages/{mid}", bearer))["message"] == "via token"
    listed = await get(hub, "/api/tokens", bearer)
    assert [(t["id"], t["name"]) for t in listed["data"]] == [(created["id"], "billing script")]
    assert "token" not in listed["data"][0]
    # A token cannot mint tokens: that needs the password.
    resp = await hub.post("/api/tokens", json={}, headers=bearer)
    assert resp.status == 401
    # Revoked: refused at once.
    resp = await hub.delete(f"/api/tokens/{created['id']}", headers=basic())
    assert resp.status == 200
    await asyncio.sleep(0.2)
    await get(hub, f"/api/messages/{mid}", bearer, status=401)
    resp = await hub.post("/api/send-sms", headers=bearer,
                          json={"phoneNumbers": [NUMBER], "message": "after revoke"})
    assert resp.status == 401
    resp = await hub.delete(f"/api/tokens/{created['id']}", headers=basic())
    assert resp.status == 404

    # A phone's session token revoked mid-connection closes its socket.
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    token_id = await hub.app[POOL].fetchval(
        "SELECT id FROM tokens WHERE kind = 'session'")
    resp = await hub.delete(f"/api/tokens/{token_id}", headers=basic())
    assert resp.status == 200
    back = await RawPhone.connect(ws_url(hub))
    await back.send({"type": "auth", "token": phone.auth["token"]})
    assert (await back.recv())["type"] == "auth_failed"
    await back.session.close()
    await phone.close()


async def test_tokens_die_with_a_password_change(hub, pool):
    from smsnodes_hub import accounts
    from smsnodes_hub.appkeys import AUTH

    await add_device(hub, "shop-phone-1")
    created = await (await hub.post("/api/tokens", json={}, headers=basic())).json()
    bearer = {"Authorization": f"Bearer {created['token']}"}
    await get(hub, "/api/tokens", bearer)
    auth = hub.app[AUTH]
    async with pool.acquire() as conn:
        await accounts.change_password(conn, auth.kdf, auth.params, "shop-phone-1", PASSWORD,
                                       "brand new password")
    await asyncio.sleep(0.3)
    await get(hub, "/api/tokens", bearer, status=401)


async def test_token_endpoint_bad_inputs(hub):
    await add_device(hub, "shop-phone-1")
    resp = await hub.post("/api/tokens", json={"name": 5}, headers=basic())
    assert resp.status == 400
    resp = await hub.post("/api/tokens", data=b"[1]", headers=basic())
    assert resp.status == 400
    resp = await hub.post("/api/tokens", json={"name": "x" * 101}, headers=basic())
    assert resp.status == 409 or resp.status == 400
    for bad in ("abc", "999999"):
        resp = await hub.delete(f"/api/tokens/{bad}", headers=basic())
        assert resp.status == 404


async def test_pacing_holds_the_per_minute_limit(hub):
    await add_device(hub, "shop-phone-1")
    resp = await hub.put("/api/device/pacing", json={"perMinute": 3}, headers=basic())
    assert resp.status == 200 and (await resp.json()) == {"perMinute": 3}
    device = await get(hub, "/api/device")
    assert device["pacing"] == {"perMinute": 3} and device["online"] is False
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    ids = [(await send(hub, text=f"p{n}"))["messageId"] for n in range(5)]
    frames = await phone.recv_sms(3)
    for frame in frames:
        await phone.ack(frame)
    await phone.nothing_for(0.8)  # three SMS this minute: the rest wait
    held = await get(hub, f"/api/messages/{ids[4]}")
    assert held["status"] == "queued"
    assert (await get(hub, "/api/device"))["online"] is True
    # Turning pacing off releases them at once.
    resp = await hub.put("/api/device/pacing", json={"perMinute": None}, headers=basic())
    assert resp.status == 200
    assert len(await phone.recv_sms(2)) == 2
    for bad in ({"perMinute": 0}, {"perMinute": "3"}, {"perMinute": 2.5}, {}):
        resp = await hub.put("/api/device/pacing", json=bad, headers=basic())
        assert resp.status == 400, bad
    await phone.close()


async def test_status_api_through_a_real_client_session(hub):
    """The same through a plain HTTP client, as a script would."""
    await add_device(hub, "shop-phone-1")
    mine = await send(hub)
    url = hub.make_url(f"/api/messages/{mine['messageId']}")
    async with aiohttp.ClientSession(headers=basic()) as session, session.get(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")
