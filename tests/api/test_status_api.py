"""The status API: one message with its timeline, the history with filters and pages, and
cancel in each state (HTTP-API.md "GET /api/messages/{id}")."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from device_sim import PhoneBehaviour, SimulatedPhone

from smsnodes_hub.appkeys import POOL
from tests.support import NUMBER, PASSWORD, add_device, basic, get, send, ws_url
from tests.wsclient import RawPhone


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


async def test_a_message_pushed_as_it_is_stored_has_its_whole_timeline(hub):
    """The store, an ack folded into a report and a delivery write no event rows of their
    own (sql/022); the timeline shows them all the same."""
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    # The first send after a login waits for the phone's queue to be looked at once.
    await send(hub, numbers=[NUMBER])
    [first] = await phone.recv_sms(1)
    await phone.ack(first)
    sent = await send(hub, numbers=[NUMBER])
    [frame] = await phone.recv_sms(1)
    for ref, status in ((1, "sent"), (2, "delivered")):  # no ack: the report stands for it
        await phone.send({"type": "status", "ref": ref, "id": frame["id"], "attempt": 1,
                          "to": NUMBER, "status": status, "at": "2026-11-21T10:00:02Z"})
        assert await phone.recv_type("ok") == {"type": "ok", "ref": ref}
    await phone.close()
    body = await get(hub, f"/api/messages/{sent['messageId']}")
    assert [(e["status"], e["to"], e.get("device")) for e in body["events"]] == [
        ("queued", None, None), ("dispatched", None, "shop-phone-1"), ("accepted", None, None),
        ("sent", NUMBER, None), ("delivered", NUMBER, None)]
    times = [datetime.fromisoformat(e["at"].replace("Z", "+00:00")) for e in body["events"]]
    assert times == sorted(times)
    assert body["events"][-1]["reportedAt"] == "2026-11-21T10:00:02.000Z"
    rows = await hub.app[POOL].fetch(
        "SELECT status, with_ack FROM message_events WHERE message_id = $1",
        sent["messageId"])
    assert [tuple(r) for r in rows] == [("sent", True)]


async def test_a_delivery_reported_first_follows_the_ack_it_stood_in_for(hub):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    sent = await send(hub, numbers=[NUMBER])
    [frame] = await phone.recv_sms(1)
    await phone.send({"type": "status", "ref": 1, "id": frame["id"], "attempt": 1,
                      "to": NUMBER, "status": "delivered"})
    assert await phone.recv_type("ok") == {"type": "ok", "ref": 1}
    await phone.close()
    body = await get(hub, f"/api/messages/{sent['messageId']}")
    assert [e["status"] for e in body["events"]] == [
        "queued", "dispatched", "accepted", "delivered"]
    times = [datetime.fromisoformat(e["at"].replace("Z", "+00:00")) for e in body["events"]]
    assert times == sorted(times)


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
    assert await phone.closed_with() == 4401  # the live socket ends with the token
    back = await RawPhone.connect(ws_url(hub))
    await back.send({"type": "auth", "token": phone.auth["token"]})
    assert (await back.recv())["type"] == "auth_failed"
    await back.session.close()
    await phone.close()


async def test_tokens_die_with_a_password_change(hub, pool):
    from smsnodes_hub.appkeys import AUTH
    from smsnodes_hub.auth import accounts

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
    body = await resp.json()
    assert resp.status == 400 and "name" in body["error"], body
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


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def _send_json(hub: Any, **fields: Any) -> dict[str, Any]:
    resp = await hub.post("/api/send-sms", headers=basic(),
                          json={"phoneNumbers": [NUMBER], "message": "hello", **fields})
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def _cancel(hub: Any, message_id: int | str) -> tuple[int, Any]:
    resp = await hub.delete(f"/api/messages/{message_id}", headers=basic())
    return resp.status, await resp.json()


async def _wait_status(hub: Any, message_id: int, status: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (await get(hub, f"/api/messages/{message_id}"))["status"] != status:
        assert asyncio.get_running_loop().time() < deadline, f"never became {status}"
        await asyncio.sleep(0.1)


async def test_cancel_a_scheduled_message_and_why_others_cannot_be(hub):
    await add_device(hub, "shop-phone-1")
    expiring = await _send_json(hub, ttl=1)  # the phone is offline: it waits, then expires
    await _wait_status(hub, expiring["messageId"], "expired")
    status, body = await _cancel(hub, expiring["messageId"])
    assert status == 409 and body["error"].endswith("cannot be cancelled: it has expired")

    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    scheduled = await _send_json(hub, scheduledAt=_in(1.5), message="scheduled")
    assert (await get(hub, f"/api/messages/{scheduled['messageId']}"))["status"] == "scheduled"
    status, body = await _cancel(hub, scheduled["messageId"])
    assert status == 200 and body["status"] == "cancelled", body
    assert [e["status"] for e in body["events"]] == ["scheduled", "cancelled"]
    await phone.nothing_for(2.0)  # its time came and went: the phone never sees it
    status, body = await _cancel(hub, scheduled["messageId"])
    assert (status, body) == (409, {"error": f"Message {scheduled['messageId']} cannot be "
                                             "cancelled: it is already cancelled",
                                    "code": "conflict"})

    outcomes = {}
    for report in ("delivered", "failed"):
        sent = await send(hub, text=report)
        [frame] = await phone.recv_sms(1)
        await phone.send({"type": "status", "ref": report, "id": frame["id"], "to": NUMBER,
                          "status": report, "error": "RESULT_ERROR_NULL_PDU"})
        await phone.recv_type("ok")
        outcomes[report] = await _cancel(hub, sent["messageId"])
    assert outcomes["delivered"][0] == 409
    assert outcomes["delivered"][1]["error"].endswith("it was already delivered")
    assert outcomes["failed"][0] == 409
    assert outcomes["failed"][1]["error"].endswith("it has already failed")

    mixed = await send(hub, numbers=[NUMBER, "+0987654321"])
    [frame] = await phone.recv_sms(1)
    for to, report in ((NUMBER, "delivered"), ("+0987654321", "failed")):
        await phone.send({"type": "status", "ref": to, "id": frame["id"], "to": to,
                          "status": report, "error": "RESULT_ERROR_NULL_PDU"})
        await phone.recv_type("ok")
    status, body = await _cancel(hub, mixed["messageId"])
    assert status == 409 and "every recipient was already delivered, failed" in body["error"]
    await phone.close()


async def test_cancel_bad_ids_are_not_found_and_change_nothing(hub, pool):
    await add_device(hub, "shop-phone-1")
    await add_device(hub, "other-phone")
    theirs = await send(hub, "other-phone")
    for bad in ("abc", "999999", "0", "-1", "1.5", "²", "9" * 30, "%20"):
        status, body = await _cancel(hub, bad)
        assert status == 404 and body["error"].startswith("Message "), (bad, body)
    status, body = await _cancel(hub, theirs["messageId"])
    assert (status, body) == (404, {"error": f"Message {theirs['messageId']} not found",
                                    "code": "not_found"})
    assert await pool.fetchval("SELECT status FROM messages") == "queued"
    assert (await hub.delete(f"/api/messages/{theirs['messageId']}")).status == 401


async def test_history_date_range_bounds(hub, pool):
    """`since` is inclusive and `until` exclusive (docs/http-api.md), checked on moments
    inside the data set."""
    await add_device(hub, "shop-phone-1")
    ids = [(await send(hub, text=f"day {day}"))["messageId"] for day in range(1, 6)]
    for day, message_id in enumerate(ids, start=1):
        await pool.execute("UPDATE messages SET created_at = $2 WHERE id = $1",
                           message_id, datetime(2026, 3, day, 9, tzinfo=UTC))

    async def texts(query: str) -> list[str]:
        page = await get(hub, f"/api/messages?{query}")
        assert page["total"] == len(page["data"])
        return [m["message"] for m in page["data"]]

    assert await texts("since=2026-03-02T09:00:00Z&until=2026-03-04T09:00:00Z") == [
        "day 3", "day 2"]
    assert await texts("since=2026-03-02T09:00:00.001Z&until=2026-03-04T09:00:00.001Z") == [
        "day 4", "day 3"]
    assert await texts("since=2026-03-05T09:00:00Z") == ["day 5"]
    assert await texts("until=2026-03-01T09:00:00Z") == []
    # Offsets are understood: 10:00+01:00 is 09:00Z.
    assert await texts("since=2026-03-04T10:00:00%2B01:00") == ["day 5", "day 4"]
    assert await texts("since=2026-03-03T09:00:00Z&until=2026-03-03T09:00:00Z") == []
    assert await texts("status=queued&since=2026-03-03T00:00:00Z") == [
        "day 5", "day 4", "day 3"]
    assert await texts("status=delivered&since=2026-03-03T00:00:00Z") == []


async def test_status_filter_follows_every_change(hub, pool):
    """The overall status is kept in a column: it must follow acks, reports, requeues on a
    dropped connection, retries and cancels, whoever makes them."""
    await add_device(hub, "shop-phone-1")
    a = (await send(hub, text="a", numbers=[NUMBER, "+0987654321"]))["messageId"]

    async def listed(status: str) -> list[int]:
        return [m["id"] for m in (await get(hub, f"/api/messages?status={status}"))["data"]]

    assert await listed("queued") == [a]
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    [frame] = await phone.recv_sms(1)
    assert await listed("dispatched") == [a]
    await phone.close()  # in flight when the connection drops: queued again
    for _ in range(50):
        if await listed("queued") == [a]:
            break
        await asyncio.sleep(0.1)
    assert await listed("queued") == [a]
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    [frame] = await phone.recv_sms(1)
    await phone.ack(frame, ref="ack")
    await phone.recv_type("ok")
    assert await listed("accepted") == [a]
    await phone.send({"type": "status", "ref": 1, "id": frame["id"], "to": NUMBER,
                      "status": "sent"})
    await phone.recv_type("ok")
    assert await listed("accepted") == [a]  # the other recipient is still with the phone
    await phone.send({"type": "status", "ref": 2, "id": frame["id"], "to": "+0987654321",
                      "status": "delivered"})
    await phone.recv_type("ok")
    assert await listed("sent") == [a] and await listed("accepted") == []
    await phone.send({"type": "status", "ref": 3, "id": frame["id"], "to": NUMBER,
                      "status": "delivered"})
    await phone.recv_type("ok")
    assert await listed("delivered") == [a]
    b = (await send(hub, text="b"))["messageId"]
    [frame] = await phone.recv_sms(1)
    status, _ = await _cancel(hub, b)
    assert status == 200 and await listed("cancelled") == [b]
    # The column agrees with the definition on every row.
    assert await pool.fetchval(
        """SELECT count(*) FROM messages m WHERE status <> message_status(m.state,
               ARRAY(SELECT r.state FROM recipients r WHERE r.message_id = m.id))""") == 0
    await phone.close()


async def test_a_retry_is_paced_by_its_own_recipients_and_shows_no_stale_error(make_hub):
    hub = await make_hub(SMSNODES_DELIVERY_RETRY_BACKOFF="1.5",
                         SMSNODES_DELIVERY_MAX_ATTEMPTS="2")
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    numbers = [f"+1555000000{n}" for n in range(5)]
    big = await send(hub, numbers=numbers)
    [frame] = await phone.recv_sms(1)
    await phone.ack(frame)
    for n, to in enumerate(numbers):
        report = {"status": "sent"} if n else {"status": "failed",
                                               "error": "RESULT_ERROR_NO_SERVICE"}
        await phone.send({"type": "status", "ref": n, "id": frame["id"], "to": to, **report})
        await phone.recv_type("ok")
    waiting = await get(hub, f"/api/messages/{big['messageId']}")
    assert waiting["recipients"][0]["status"] == "scheduled"
    assert waiting["recipients"][0]["error"] is None  # not failed: it goes out again
    assert ("failed", "RESULT_ERROR_NO_SERVICE") in [
        (e["status"], e.get("error")) for e in waiting["events"]]

    # Pacing at 3 a minute, one SMS already gone: the retry carries one recipient, so it
    # fits the two left, though its message has five.
    resp = await hub.put("/api/device/pacing", json={"perMinute": 3}, headers=basic())
    assert resp.status == 200
    await send(hub, text="one")
    [one] = await phone.recv_sms(1)
    await phone.ack(one)
    [retry] = await phone.recv_sms(1, timeout=6)
    assert (retry["id"], retry["attempt"], retry["to"]) == (frame["id"], 2, [numbers[0]])
    await phone.ack(retry)
    await asyncio.sleep(0.3)
    again = await get(hub, f"/api/messages/{big['messageId']}")
    assert (again["recipients"][0]["attempt"], again["recipients"][0]["error"]) == (2, None)
    await phone.close()


async def test_heartbeat_signal_takes_what_phones_report(hub):
    """PROTOCOL.md gives `signal` no range: a 0-4 level, or dBm (negative), both stored."""
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    for signal in (-95, 0, 4, 31):
        await phone.send({"type": "heartbeat", "ref": "h", "signal": signal, "battery": 80})
        assert await phone.recv_type("ok") == {"type": "ok", "ref": "h"}
        assert (await get(hub, "/api/device"))["signal"] == signal
    for bad in (-201, 201, 2.5, "3", True):
        await phone.send({"type": "heartbeat", "ref": "bad", "signal": bad})
        reply = await phone.recv_type("error")
        assert reply["ref"] == "bad" and "signal must be an integer from -200 to 200" in \
            reply["error"], (bad, reply)
    assert (await get(hub, "/api/device"))["signal"] == 31
    await phone.close()


async def test_device_tokens_and_pacing_bad_inputs(hub, pool):
    await add_device(hub, "shop-phone-1")
    await add_device(hub, "other-phone")
    for path in ("/api/device", "/api/tokens"):
        assert (await get(hub, path, {}, status=401))["error"].startswith("Authentication")
        await get(hub, path, basic(password="wrong password"), status=401)
        await get(hub, path, {"Authorization": "Bearer snh_nope"}, status=401)
        await get(hub, path, {"Authorization": "Basic !!!"}, status=401)
    mine = await get(hub, "/api/device")
    assert mine["username"] == "shop-phone-1" and mine["pacing"] == {"perMinute": None}

    # Another account's token id is not found, and stays alive.
    theirs = await (await hub.post("/api/tokens", json={"name": "theirs"},
                                   headers=basic("other-phone"))).json()
    resp = await hub.delete(f"/api/tokens/{theirs['id']}", headers=basic())
    assert (resp.status, await resp.json()) == (404, {"error": f"Token {theirs['id']} not found",
                                                         "code": "not_found"})
    bearer = {"Authorization": f"Bearer {theirs['token']}"}
    assert (await get(hub, "/api/device", bearer))["username"] == "other-phone"
    for bad in ("abc", "²", "-1", "0", "9" * 30):
        resp = await hub.delete(f"/api/tokens/{bad}", headers=basic())
        assert resp.status == 404, bad

    for raw, expected in [
        (b'{"perMinute": 10001}', "perMinute must be a whole number from 1 to 10000"),
        (b'{"perMinute": true}', "perMinute must be a whole number"),
        (b'{"perMinute": -1}', "perMinute must be a whole number"),
        (b'{"perMinute": 1e2}', "perMinute must be a whole number"),
        (b"not json", "Request body must be a JSON object"),
        (b"[3]", "Request body must be a JSON object"),
        (b"", "Request body must be a JSON object"),
        (b'{"per_minute": 3}', "perMinute is required"),
    ]:
        resp = await hub.put("/api/device/pacing", data=raw, headers=basic())
        body = await resp.json()
        assert resp.status == 400 and expected in body["error"], (raw, body)
    assert (await get(hub, "/api/device"))["pacing"] == {"perMinute": None}
    assert await pool.fetchval(
        "SELECT count(*) FROM devices WHERE pace_per_minute IS NOT NULL") == 0
    resp = await hub.get("/api/messages?page=%C2%B2", headers=basic())
    assert resp.status == 400
