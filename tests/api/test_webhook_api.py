"""Webhook registrations over HTTP: create, read, change, delete, the delivery log; bad
input is refused with a clear error and changes nothing; one account never sees or
touches another's webhooks; targets that are not public are refused."""

from __future__ import annotations

import base64
import ipaddress
import time
from typing import Any

import pytest
from device_sim import SimulatedPhone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from smsnodes_hub import webhooks
from smsnodes_hub.webhooks.targets import address_allowed, ip_literal
from tests.support import PASSWORD, add_device, basic, get, ws_url
from tests.webhooks.receiver import LOCAL, SENDER, register

PUBLIC = "https://93.184.216.34/hooks/sms"  # a public address literal: never contacted here


async def snapshot(pool: Any) -> list[Any]:
    return [dict(r) for r in await pool.fetch("SELECT * FROM webhooks ORDER BY id")]


async def test_create_read_change_and_delete(hub, pool):
    await add_device(hub, "shop-phone-1")
    resp = await hub.post("/api/webhooks", headers=basic(), json={
        "url": PUBLIC, "events": ["sms.received", "message.delivered"]})
    created = await resp.json()
    assert resp.status == 201, created
    assert created["url"] == PUBLIC and created["events"] == ["sms.received",
                                                               "message.delivered"]
    assert created["active"] is True and created["disabledReason"] is None
    assert created["createdAt"].endswith("Z")
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    hook_id = created["id"]

    # The secret is shown once: never in a read.
    listed = await get(hub, "/api/webhooks")
    assert [h["id"] for h in listed["data"]] == [hook_id]
    one = await get(hub, f"/api/webhooks/{hook_id}")
    assert "secret" not in one and "secret" not in listed["data"][0]
    assert one == {k: v for k, v in created.items() if k != "secret"}
    assert secret.encode() not in str(await snapshot(pool)).encode()  # sealed at rest

    # Bearer works like Basic.
    token = (await (await hub.post("/api/tokens", json={}, headers=basic())).json())["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await get(hub, "/api/webhooks", headers=bearer))["data"][0]["id"] == hook_id

    resp = await hub.patch(f"/api/webhooks/{hook_id}", headers=bearer,
                           json={"events": ["device.offline"], "url": PUBLIC + "/v2"})
    changed = await resp.json()
    assert resp.status == 200, changed
    assert changed["events"] == ["device.offline"] and changed["url"] == PUBLIC + "/v2"
    # A new URL restarts the failure clock (the receiver moved); other changes do not.
    await pool.execute("UPDATE webhooks SET failing_since = now() - interval '1 hour'")
    resp = await hub.patch(f"/api/webhooks/{hook_id}", headers=basic(),
                           json={"events": ["device.offline", "device.online"]})
    assert (await resp.json())["failingSince"] is not None
    resp = await hub.patch(f"/api/webhooks/{hook_id}", headers=basic(), json={"url": PUBLIC})
    assert (await resp.json())["failingSince"] is None
    resp = await hub.patch(f"/api/webhooks/{hook_id}", headers=basic(), json={"active": False})
    paused = await resp.json()
    assert paused["active"] is False and paused["disabledReason"] == "disabled by its owner"
    resp = await hub.patch(f"/api/webhooks/{hook_id}", headers=basic(), json={"active": True})
    back = await resp.json()
    assert back["active"] is True and back["disabledReason"] is None

    deliveries = await get(hub, f"/api/webhooks/{hook_id}/deliveries")
    assert deliveries == {"data": [], "page": 1, "perPage": 25, "total": 0, "totalPages": 0}

    resp = await hub.delete(f"/api/webhooks/{hook_id}", headers=basic())
    assert resp.status == 200 and await resp.json() == {"id": hook_id, "deleted": True}
    await get(hub, f"/api/webhooks/{hook_id}", status=404)
    resp = await hub.delete(f"/api/webhooks/{hook_id}", headers=basic())
    assert resp.status == 404
    assert await snapshot(pool) == []
    assert (await hub.get("/api/webhooks")).status == 401


BAD_CREATE = [
    ([], "Request body must be a JSON object"),
    ({"events": ["sms.received"]}, "url is required"),
    ({"url": 42, "events": ["sms.received"]}, "url is required"),
    ({"url": "ftp://93.184.216.34/x", "events": ["sms.received"]}, "must start with https://"),
    ({"url": "not a url", "events": ["sms.received"]}, "must not contain spaces"),
    ({"url": "example.com/hook", "events": ["sms.received"]}, "must start with https://"),
    ({"url": "https://", "events": ["sms.received"]}, "must name a host"),
    ({"url": "http://93.184.216.34/x", "events": ["sms.received"]}, "webhooks.allow_http"),
    ({"url": "https://93.184.216.34/" + "x" * 2100, "events": ["sms.received"]},
     "at most 2048 characters"),
    ({"url": "https://alice:hunter22@93.184.216.34/", "events": ["sms.received"]},
     "must not contain a user name or password"),
    ({"url": PUBLIC}, "events is required"),
    ({"url": PUBLIC, "events": "sms.received"}, "events must be a list"),
    ({"url": PUBLIC, "events": []}, "at least one event"),
    ({"url": PUBLIC, "events": ["message.received"]}, 'unknown event "message.received"'),
    ({"url": PUBLIC, "events": [1]}, "unknown event 1"),
    ({"url": PUBLIC, "events": ["sms.received", "sms.received"]}, "listed twice"),
]

# Loopback, private, shared, link-local, unique-local, multicast, unspecified, metadata,
# broadcast, IPv4 inside IPv6, legacy numeric forms, and a name that resolves to loopback.
PRIVATE_TARGETS = [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.10", "100.64.0.1", "169.254.169.254",
    "0.0.0.0", "224.0.0.251", "255.255.255.255", "[::1]", "[::]", "[fe80::1]",  # noqa: S104
    "[fc00::1]",
    "[fd00:ec2::254]", "[ff02::1]", "[::ffff:127.0.0.1]", "[64:ff9b::a00:1]",
    "[2002:c0a8:0101::1]", "127.1", "2130706433", "0x7f.0.0.1", "192.0.2.1", "localhost",
    "[fec0::1]", "192.0.0.9", "198.18.0.1", "[::127.0.0.1]", "[::ffff:169.254.169.254]",
]


async def test_bad_input_is_refused_clearly_and_changes_nothing(hub, pool):
    await add_device(hub, "shop-phone-1")
    for body, expected in BAD_CREATE:
        resp = await hub.post("/api/webhooks", headers=basic(), json=body)
        answer = await resp.json()
        assert resp.status == 400 and expected in answer["error"], (body, answer)
        assert "hunter22" not in answer["error"]
    for host in PRIVATE_TARGETS:
        resp = await hub.post("/api/webhooks", headers=basic(),
                              json={"url": f"https://{host}/hook", "events": ["sms.received"]})
        answer = await resp.json()
        assert resp.status == 400, (host, answer)
        assert "public address" in answer["error"] or "not a valid IP" in answer["error"], (
            host, answer)
    assert await snapshot(pool) == []

    created = await (await hub.post("/api/webhooks", headers=basic(), json={
        "url": PUBLIC, "events": ["sms.received"]})).json()
    hook = f"/api/webhooks/{created['id']}"
    before = await snapshot(pool)
    for body, expected in [
        ({}, "Nothing to change"),
        ({"colour": "blue"}, "Nothing to change"),
        ({"active": "yes"}, "active must be true or false"),
        ({"active": None}, "active must be true or false"),
        ({"events": []}, "at least one event"),
        ({"events": ["sms.received", "nope"]}, "unknown event"),
        ({"events": {"sms.received": True}}, "must be a list"),
        ({"url": "http://93.184.216.34/"}, "allow_http"),
        ({"url": "https://10.0.0.8/"}, "public address"),
        ({"url": None}, "url is required"),
        ({"url": PUBLIC + "/new", "events": ["bogus"]}, "unknown event"),  # all or nothing
    ]:
        resp = await hub.patch(hook, headers=basic(), json=body)
        answer = await resp.json()
        assert resp.status == 400 and expected in answer["error"], (body, answer)
    resp = await hub.patch(hook, headers={**basic(), "Content-Type": "application/json"},
                           data=b"[1, 2]")
    assert resp.status == 400
    assert await snapshot(pool) == before

    # Unknown and malformed ids are simply not found, on every operation.
    for raw in ("999999", "0", "abc", "-1", "1.5", "9" * 30):
        for method, path in (("GET", f"/api/webhooks/{raw}"),
                             ("PATCH", f"/api/webhooks/{raw}"),
                             ("DELETE", f"/api/webhooks/{raw}"),
                             ("GET", f"/api/webhooks/{raw}/deliveries")):
            resp = await hub.request(method, path, headers=basic(), json={"active": True})
            answer = await resp.json()
            assert resp.status == 404 and answer["error"].startswith("Webhook "), (
                method, path, answer)
    for query, expected in [("?page=0", "page must be"), ("?per_page=101", "per_page must be"),
                            ("?per_page=ten", "per_page must be"), ("?page=-2", "page must"),
                            ("?state=lost", "state must be one of")]:
        resp = await hub.get(f"{hook}/deliveries{query}", headers=basic())
        answer = await resp.json()
        assert resp.status == 400 and expected in answer["error"], (query, answer)
    assert await snapshot(pool) == before


async def test_an_account_has_at_most_twenty_webhooks(hub, pool):
    await add_device(hub, "shop-phone-1")
    for n in range(webhooks.MAX_WEBHOOKS):
        resp = await hub.post("/api/webhooks", headers=basic(),
                              json={"url": f"{PUBLIC}/{n}", "events": ["sms.received"]})
        assert resp.status == 201
    resp = await hub.post("/api/webhooks", headers=basic(),
                          json={"url": PUBLIC, "events": ["sms.received"]})
    assert resp.status == 409 and "at most 20" in (await resp.json())["error"]
    assert await pool.fetchval("SELECT count(*) FROM webhooks") == webhooks.MAX_WEBHOOKS


async def test_accounts_never_see_or_touch_each_others_webhooks(make_hub, receiver, pool):
    hub = await make_hub(**LOCAL)
    await add_device(hub, "shop-phone-1")
    await add_device(hub, "other-phone")
    mine = await register(hub, receiver, ["sms.received"], path="/mine")
    theirs = await register(hub, receiver, ["sms.received"], path="/theirs",
                            headers=basic("other-phone"))
    other = basic("other-phone")
    before = await snapshot(pool)
    assert [h["id"] for h in (await get(hub, "/api/webhooks", headers=other))["data"]] == [
        theirs["id"]]
    for method, path in (("GET", f"/api/webhooks/{mine['id']}"),
                         ("PATCH", f"/api/webhooks/{mine['id']}"),
                         ("DELETE", f"/api/webhooks/{mine['id']}"),
                         ("GET", f"/api/webhooks/{mine['id']}/deliveries")):
        resp = await hub.request(method, path, headers=other,
                                 json={"active": False, "events": ["device.online"]})
        assert resp.status == 404, (method, path)
        assert await resp.json() == {"error": f"Webhook {mine['id']} not found",
                                     "code": "not_found"}
    assert await snapshot(pool) == before

    # Events go to their own account's webhooks only.
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        await phone.send_inbound(SENDER, "for my eyes only")
        [event] = await receiver.count("/mine", 1)
    assert event["data"]["message"] == "for my eyes only"
    assert receiver.on("/theirs") == []
    log = await get(hub, f"/api/webhooks/{mine['id']}/deliveries")
    assert log["total"] == 1
    resp = await hub.get(f"/api/webhooks/{mine['id']}/deliveries", headers=other)
    assert resp.status == 404
    assert (await get(hub, f"/api/webhooks/{theirs['id']}/deliveries",
                      headers=other))["total"] == 0


async def test_deliveries_are_listed_newest_first_in_pages(make_hub, receiver):
    hub = await make_hub(**LOCAL)
    await add_device(hub, "shop-phone-1")
    hook = await register(hub, receiver, ["sms.received"])
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        for n in range(5):
            await phone.send_inbound(SENDER, f"n{n}")
        events = await receiver.count("/hook", 5)
    ids = {e["data"]["message"]: e["id"] for e in events}
    path = f"/api/webhooks/{hook['id']}/deliveries"
    first = await get(hub, f"{path}?per_page=2")
    assert (first["page"], first["perPage"], first["total"], first["totalPages"]) == (1, 2, 5, 3)
    last = await get(hub, f"{path}?per_page=2&page=3")
    assert len(last["data"]) == 1 and last["data"][0]["eventId"] == ids["n0"]
    assert [d["eventId"] for d in first["data"]] == [ids["n4"], ids["n3"]]
    assert all(d["type"] == "sms.received" for d in first["data"])
    assert (await get(hub, f"{path}?state=failed"))["total"] == 0


@pytest.mark.parametrize(("address", "allowed"), [
    ("93.184.216.34", True), ("2606:2800:220:1:248:1893:25c8:1946", True),
    ("127.0.0.1", False), ("10.0.0.1", False), ("100.64.1.1", False), ("169.254.169.254", False),
    ("168.63.129.16", False), ("fd00:ec2::254", False), ("fe80::1", False), ("::1", False),
    ("::ffff:10.0.0.1", False), ("::ffff:93.184.216.34", False), ("64:ff9b::7f00:1", False),
    ("2002:7f00:1::", False), ("224.0.0.1", False), ("ff0e::1", False), ("240.0.0.1", False),
    # Decided by explicit lists, not by the stdlib's version-dependent is_global (3.11.7
    # calls the first three global).
    ("fec0::1", False), ("192.0.0.9", False), ("192.0.0.10", False), ("192.0.0.192", False),
    ("192.88.99.1", False),
    # "This network", shared, benchmarking, documentation, multicast, reserved, broadcast.
    ("0.0.0.0", False), ("0.1.2.3", False), ("100.127.255.254", False),  # noqa: S104
    ("198.18.0.1", False), ("198.19.255.255", False), ("192.0.2.1", False),
    ("198.51.100.7", False), ("203.0.113.9", False), ("239.255.255.250", False),
    ("250.1.2.3", False), ("255.255.255.255", False),
    # Metadata services.
    ("169.254.170.2", False), ("100.100.100.200", False), ("fd00:ec2::23", False),
    # IPv4 wrapped in IPv6: mapped (also of a public address), compatible, translated,
    # 6to4 and NAT64 of private addresses, local-use NAT64.
    ("::ffff:169.254.169.254", False), ("::ffff:0.0.0.0", False), ("::127.0.0.1", False),
    ("::93.184.216.34", False), ("::ffff:0:a00:1", False), ("2002:a00:1::1", False),
    ("2002:a9fe:a9fe::", False), ("64:ff9b::a9fe:a9fe", False), ("64:ff9b::c0a8:101", False),
    ("64:ff9b:1::5db8:d822", False),
    # IPv6 that is not global unicast: unspecified, discard, Teredo, benchmarking,
    # documentation (old and new), SRv6, unique-local, multicast, outside 2000::/3.
    ("::", False), ("100::1", False), ("2001::1", False), ("2001:2::1", False),
    ("2001:db8::1", False), ("3fff::1", False), ("5f00::1", False), ("fd12:3456::1", False),
    ("ff02::1", False), ("4000::1", False), ("fe80::1%1", False),
    # Public targets stay allowed, also through NAT64 and 6to4 of a public address.
    ("8.8.8.8", True), ("2001:4860:4860::8888", True), ("64:ff9b::5db8:d822", True),
    ("2002:5db8:d822::1", True),
])
def test_which_addresses_are_public(address: str, allowed: bool) -> None:
    assert address_allowed(ipaddress.ip_address(address)) is allowed


def test_ip_literals_are_recognised_as_aiohttp_does() -> None:
    assert ip_literal("example.com") is None
    assert str(ip_literal("10.0.0.1")) == "10.0.0.1"
    with pytest.raises(OSError, match="not a valid IP"):
        ip_literal("127.1")  # aiohttp would not resolve it: refused rather than guessed


def test_retries_back_off_exponentially_with_jitter_up_to_the_ceiling() -> None:
    for attempts, low, high in ((1, 7.5, 10), (2, 15, 20), (4, 60, 80), (12, 2700, 3600),
                                (500, 2700, 3600)):
        delays = [webhooks.backoff(attempts, 10, 3600) for _ in range(50)]
        assert all(low <= d <= high for d in delays), (attempts, delays)
        assert len(set(delays)) > 1  # jittered


def test_signature_matches_the_standard() -> None:
    secret = webhooks.new_secret()
    body = b'{"id":"evt_1","type":"sms.received"}'
    now = int(time.time())
    headers = {"webhook-id": "evt_1", "webhook-timestamp": str(now),
               "webhook-signature": webhooks.sign(secret, "evt_1", now, body)}
    assert Webhook(secret).verify(body, headers)["type"] == "sms.received"
    with pytest.raises(WebhookVerificationError, match="signature"):
        Webhook(webhooks.new_secret()).verify(body, headers)

