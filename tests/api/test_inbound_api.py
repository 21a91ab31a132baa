"""GET /api/inbound and GET /api/inbound/{id}: received SMS, decrypted for their owner,
newest first, filtered by sender and date, in pages; another account's are 404."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.support import PASSWORD, add_device, basic, get, ws_url
from tests.wsclient import RawPhone

ALICE = "+15550001111"
BOB = "+15550002222"


async def receive(phone: RawPhone, ref: str, sender: str, text: str, at: str) -> None:
    await phone.send({"type": "inbound", "ref": ref, "from": sender, "message": text,
                      "receivedAt": at})
    assert await phone.recv_type("ok") == {"type": "ok", "ref": ref}


async def test_received_sms_are_listed_newest_first_with_filters_and_pages(hub):
    device_id = await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    await receive(phone, "a", "+1 (555) 000-1111", "first from alice", "2026-03-01T09:00:00Z")
    await receive(phone, "b", BOB, "from bob", "2026-03-02T09:00:00Z")
    await receive(phone, "c", ALICE, "second from alice ✓", "2026-03-03T09:00:00.250Z")
    await receive(phone, "c", ALICE, "second from alice ✓", "2026-03-03T09:00:00.250Z")  # again
    await phone.close()

    page = await get(hub, "/api/inbound")
    assert (page["page"], page["perPage"], page["total"], page["totalPages"]) == (1, 25, 3, 1)
    assert [(m["from"], m["message"]) for m in page["data"]] == [
        (ALICE, "second from alice ✓"), (BOB, "from bob"), (ALICE, "first from alice")]
    newest = page["data"][0]
    assert newest["receivedAt"] == "2026-03-03T09:00:00.250Z"
    assert newest["deviceId"] == device_id and newest["createdAt"].endswith("Z")
    assert await get(hub, f"/api/inbound/{newest['id']}") == newest

    # The sender filter cleans the number like phone numbers everywhere else.
    by_alice = await get(hub, "/api/inbound?from=%2B1%20555-000-1111")
    assert [m["message"] for m in by_alice["data"]] == ["second from alice ✓",
                                                          "first from alice"]
    assert (await get(hub, "/api/inbound?from=%2B15559999999"))["total"] == 0
    window = await get(hub, "/api/inbound?since=2026-03-02T00:00:00Z&until=2026-03-03T09:00:00Z")
    assert [m["message"] for m in window["data"]] == ["from bob"]
    second = await get(hub, "/api/inbound?per_page=2&page=2")
    assert [m["message"] for m in second["data"]] == ["first from alice"]
    assert second["totalPages"] == 2
    assert (await get(hub, "/api/inbound?page=9"))["data"] == []

    # Bearer works like Basic.
    token = (await (await hub.post("/api/tokens", json={}, headers=basic())).json())["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await get(hub, "/api/inbound", headers=bearer))["total"] == 3


async def test_bad_queries_are_refused_and_unknown_ids_are_not_found(hub):
    await add_device(hub, "shop-phone-1")
    for query, expected in [
        ("from=", "from must be a phone number or sender name"),
        ("from=%20%20", "from must be a phone number or sender name"),
        (f"from={'A' * 101}", "from must be a phone number or sender name"),
        ("from=%07bell", "from must be a phone number or sender name"),
        ("since=yesterday", "since must be an ISO 8601 timestamp"),
        ("until=2026-13-01", "until must be an ISO 8601 timestamp"),
        ("page=0", "page must be a whole number"),
        ("per_page=101", "per_page must be a whole number from 1 to 100"),
        ("per_page=-5", "per_page must be"),
    ]:
        resp = await hub.get(f"/api/inbound?{query}", headers=basic())
        body = await resp.json()
        assert resp.status == 400 and expected in body["error"], (query, body)
    for raw in ("12345", "0", "abc", "-3", "9" * 25):
        body = await get(hub, f"/api/inbound/{raw}", status=404)
        assert body["error"].startswith("Inbound message ")
    assert (await hub.get("/api/inbound")).status == 401
    wrong = basic(password="not the password")
    assert (await hub.get("/api/inbound", headers=wrong)).status == 401


async def test_another_account_never_sees_them(hub):
    await add_device(hub, "shop-phone-1")
    await add_device(hub, "other-phone")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    await receive(phone, "x", ALICE, "private", "2026-03-01T09:00:00Z")
    await phone.close()
    mine: Any = (await get(hub, "/api/inbound"))["data"][0]
    other = basic("other-phone")
    assert await get(hub, "/api/inbound", headers=other) == {
        "data": [], "page": 1, "perPage": 25, "total": 0, "totalPages": 0}
    assert (await get(hub, f"/api/inbound?from={ALICE.replace('+', '%2B')}",
                      headers=other))["total"] == 0
    body = await get(hub, f"/api/inbound/{mine['id']}", headers=other, status=404)
    assert body == {"error": f"Inbound message {mine['id']} not found", "code": "not_found"}
    assert "private" not in str(body)


async def test_what_real_phones_send_is_stored(hub):
    """PROTOCOL.md sections 4-5 require only `ref` (a string or an integer): alphanumeric
    senders, integer refs, a missing receivedAt and an empty text are all real SMS."""
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    frames: list[dict[str, Any]] = [
        {"ref": "sender-id", "from": "  AMAZON ", "message": "Your parcel is on its way",
         "receivedAt": "2026-03-01T09:00:00Z"},
        {"ref": 5, "from": "Bank-Info", "message": "integer ref",
         "receivedAt": "2026-03-02T09:00:00Z"},
        {"ref": "5", "from": "Bank-Info", "message": "integer ref",  # the same SMS again
         "receivedAt": "2026-03-02T09:00:00Z"},
        {"ref": "no-time", "from": ALICE, "message": "no receivedAt"},
        {"ref": "empty", "from": BOB, "message": "", "receivedAt": "2026-03-03T09:00:00Z"},
        {"ref": "no-text", "from": BOB, "receivedAt": "2026-03-03T09:00:01Z"},
    ]
    before = datetime.now(UTC)
    for frame in frames:
        await phone.send({"type": "inbound", **frame})
        # The reply echoes the ref as sent: an integer stays an integer.
        assert await phone.recv_type("ok") == {"type": "ok", "ref": frame["ref"]}
    after = datetime.now(UTC)
    await phone.close()

    page = await get(hub, "/api/inbound")
    assert page["total"] == 5  # 5 and "5" are one idempotency key
    by_text = {m["message"]: m for m in page["data"]}
    assert by_text["Your parcel is on its way"]["from"] == "AMAZON"  # trimmed, as given
    assert by_text["integer ref"]["from"] == "Bank-Info"
    received = datetime.fromisoformat(by_text["no receivedAt"]["receivedAt"])
    assert before.replace(microsecond=0) <= received <= after  # the hub's clock stood in
    assert [m["from"] for m in page["data"] if m["message"] == ""] == [BOB, BOB]
    # The sender filter finds sender names as stored, and numbers however written.
    named = await get(hub, "/api/inbound?from=AMAZON")
    assert [m["message"] for m in named["data"]] == ["Your parcel is on its way"]
    assert (await get(hub, "/api/inbound?from=%20AMAZON%20"))["total"] == 1
    assert (await get(hub, "/api/inbound?from=amazon"))["total"] == 0
    assert (await get(hub, "/api/inbound?from=%2B1%20555%20000%201111"))["total"] == 1


async def test_only_what_the_contract_calls_invalid_is_refused(hub, pool):
    await add_device(hub, "shop-phone-1")
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    good = {"type": "inbound", "ref": "r", "from": ALICE, "message": "hi",
            "receivedAt": "2026-03-01T09:00:00Z"}
    for change, expected in [
        ({"from": "   "}, "from must be a non-empty string"),
        ({"from": ""}, "from must be a non-empty string"),
        ({"from": "A" * 101}, "from must be a non-empty string of at most 100"),
        ({"from": 1234567890}, "from must be a non-empty string"),
        ({"from": "two\nlines"}, "from must be a non-empty string"),
        ({"message": 5}, "message must be a string"),
        ({"message": "x" * 10_001}, "message must be a string of at most 10000"),
        ({"receivedAt": "yesterday"}, "receivedAt must be an ISO 8601 timestamp"),
        ({"receivedAt": 1700000000}, "receivedAt must be an ISO 8601 timestamp"),
        ({"ref": True}, "ref must be a string"),
        ({"ref": ""}, "ref must be a string"),
    ]:
        await phone.send({**good, **change})
        reply = await phone.recv_type("error")
        assert expected in reply["error"], (change, reply)
        if "ref" not in change:
            assert reply["ref"] == "r", (change, reply)
    missing_ref = {k: v for k, v in good.items() if k != "ref"}
    await phone.send(missing_ref)
    assert await phone.recv_type("error") == {
        "type": "error", "error": "inbound needs a ref (its idempotency key)"}
    # The connection stays open and nothing was stored.
    assert await pool.fetchval("SELECT count(*) FROM inbound_messages") == 0
    await phone.send(good)
    assert await phone.recv_type("ok") == {"type": "ok", "ref": "r"}
    assert await pool.fetchval("SELECT count(*) FROM inbound_messages") == 1
    await phone.close()
