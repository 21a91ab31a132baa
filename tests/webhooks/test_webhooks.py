"""Webhook delivery end to end: a real hub, real phones on WebSockets, and a real HTTP
receiver on 127.0.0.1 that checks every signature with the independent `standardwebhooks`
package. Every event arrives, signed, as often as it must and no more."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import time
from collections import Counter
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from device_sim import SimulatedPhone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from smsnodes_hub.appkeys import AUTH, KEYRING, WEBHOOK_WORKER
from smsnodes_hub.messaging import inbound, reports, withdrawal
from tests.auth.test_at_rest import assert_absent, pg_dump
from tests.support import PASSWORD, add_device, basic, get, until, ws_url
from tests.webhooks.receiver import LOCAL, NUMBER, SENDER, deliveries, register
from tests.wsclient import RawPhone

# -- What arrives ---------------------------------------------------------------------------------


async def test_inbound_sms_arrives_signed_as_sms_received(make_hub, receiver):
    hub = await make_hub(**LOCAL)
    device_id = await add_device(hub, "shop-phone-1")
    hook = await register(hub, receiver, ["sms.received"])
    assert hook["secret"].startswith("whsec_") and hook["active"] is True
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        await phone.send_inbound("+1 555 000 1111", "Réponse: OUI ✓")
        [event] = await receiver.count("/hook", 1)
    assert event["type"] == "sms.received"
    assert event["id"].startswith("evt_") and len(event["id"]) == 36
    assert event["createdAt"].endswith("Z")
    data = event["data"]
    assert data["from"] == SENDER and data["message"] == "Réponse: OUI ✓"
    assert data["deviceId"] == device_id and data["username"] == "shop-phone-1"
    assert data["receivedAt"].endswith("Z")
    [request] = receiver.requests
    assert request.headers["webhook-signature"].startswith("v1,")
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 30
    assert request.headers["User-Agent"].startswith("smsnodes-hub/")
    # The same SMS through the API, and the delivery in the webhook's log.
    stored = await get(hub, f"/api/inbound/{data['inboundId']}")
    assert stored["from"] == SENDER and stored["message"] == "Réponse: OUI ✓"
    log = await deliveries(hub, hook["id"])
    [delivery] = log["data"]
    assert delivery["eventId"] == event["id"] and delivery["state"] == "delivered"
    assert [a["statusCode"] for a in delivery["attempts"]] == [200]
    # A tampered body fails the independent verification: the check above means something.
    with pytest.raises(WebhookVerificationError, match="signature"):
        Webhook(hook["secret"]).verify(request.body.replace(b"OUI", b"NON"), request.headers)


async def test_each_message_outcome_arrives_exactly_once(make_hub, receiver):
    hub = await make_hub(**LOCAL, SMSNODES_DELIVERY_RETRY_BACKOFF="0.05")
    device_id = await add_device(hub, "shop-phone-1")
    events = ["message.sent", "message.delivered", "message.failed", "message.expired",
              "message.cancelled"]
    await register(hub, receiver, events)
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)

    async def send(text: str, **extra: Any) -> int:
        resp = await hub.post("/api/send-sms", headers=basic(),
                              json={"phoneNumbers": [NUMBER], "message": text, **extra})
        body = await resp.json()
        assert resp.status == 200, body
        return body["messageId"]

    async def report(frame: dict[str, Any], status: str, error: str | None = None) -> None:
        await phone.send({"type": "status", "ref": f"{frame['id']}-{status}-{frame['attempt']}",
                          "id": frame["id"], "attempt": frame["attempt"], "to": NUMBER,
                          "status": status, **({"error": error} if error else {})})
        assert (await phone.recv_type("ok"))["type"] == "ok"

    delivered = await send("delivered one")
    [frame] = await phone.recv_sms(1)
    await report(frame, "sent")
    await report(frame, "delivered")
    await report(frame, "delivered")  # a repeated report changes nothing: no second event

    failed = await send("failed one")
    [frame] = await phone.recv_sms(1)
    await report(frame, "failed", "RESULT_ERROR_NO_SERVICE")  # transient: retried, no event
    [retry] = await phone.recv_sms(1, timeout=5)
    assert retry["attempt"] == 2
    await report(retry, "failed", "RESULT_ERROR_NULL_PDU")  # permanent: the outcome

    expired = await send("expires in flight", ttl=1)
    [frame] = await phone.recv_sms(1)
    await phone.recv_type("cancel", timeout=5)

    await phone.close()
    cancelled = await send("cancelled while queued")
    resp = await hub.delete(f"/api/messages/{cancelled}", headers=basic())
    assert resp.status == 200

    got = await receiver.count("/hook", 5)
    await asyncio.sleep(0.5)  # and nothing more comes
    got = receiver.events("/hook")
    assert sorted((e["type"], e["data"]["messageId"]) for e in got) == sorted([
        ("message.sent", delivered), ("message.delivered", delivered),
        ("message.failed", failed), ("message.expired", expired),
        ("message.cancelled", cancelled)])
    assert len({e["id"] for e in got}) == 5
    by_type = {e["type"]: e["data"] for e in got}
    assert by_type["message.delivered"] == {
        "messageId": delivered, "to": NUMBER, "status": "delivered", "error": None,
        "attempt": 1, "message": "delivered one", "deviceId": device_id,
        "username": "shop-phone-1", "redacted": []}  # the key was in memory: all is there
    assert all(data["redacted"] == [] for data in by_type.values())
    assert by_type["message.failed"]["error"] == "RESULT_ERROR_NULL_PDU"
    assert by_type["message.failed"]["attempt"] == 2
    assert by_type["message.expired"]["message"] == "expires in flight"
    assert by_type["message.cancelled"]["status"] == "cancelled"


async def test_failing_receiver_gets_the_same_event_until_it_answers_2xx(make_hub, receiver):
    hub = await make_hub(**LOCAL)
    await add_device(hub, "shop-phone-1")
    receiver.script["/hook"] = [500, 500, 200]
    hook = await register(hub, receiver, ["sms.received"])
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        await phone.send_inbound(SENDER, "retry me")
        got = await receiver.count("/hook", 3)
        await asyncio.sleep(0.6)  # well past the backoff: no fourth request
    assert len(receiver.on("/hook")) == 3
    assert len({e["id"] for e in got}) == 1 and got[0]["data"]["message"] == "retry me"
    times = [r.at for r in receiver.requests]
    assert all(later - earlier >= 0.05 for earlier, later in pairwise(times))
    [delivery] = (await deliveries(hub, hook["id"]))["data"]
    assert delivery["state"] == "delivered" and delivery["nextAttemptAt"] is None
    attempts = delivery["attempts"]
    assert [(a["attempt"], a["statusCode"], a["error"]) for a in attempts] == [
        (1, 500, "HTTP 500"), (2, 500, "HTTP 500"), (3, 200, None)]
    assert attempts[0]["nextRetryAt"] is not None and attempts[2]["nextRetryAt"] is None
    assert all(a["durationMs"] >= 0 for a in attempts)
    webhook = await get(hub, f"/api/webhooks/{hook['id']}")
    assert webhook["lastSuccessAt"] is not None and webhook["failingSince"] is None


async def test_a_receiver_that_does_not_answer_in_time_is_retried(make_hub, receiver):
    hub = await make_hub(**LOCAL, SMSNODES_WEBHOOKS_TIMEOUT="0.3")
    await add_device(hub, "shop-phone-1")
    receiver.delays = [1.0]  # the first answer comes too late
    hook = await register(hub, receiver, ["sms.received"])
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        await phone.send_inbound(SENDER, "slow")
        got = await receiver.count("/hook", 2)
    assert got[0]["id"] == got[1]["id"]
    [delivery] = (await until(
        lambda: _delivered(hub, hook["id"])))["data"]
    assert delivery["attempts"][0]["error"] == "no answer within 0.3 s"
    assert delivery["attempts"][0]["statusCode"] is None
    assert delivery["attempts"][1]["statusCode"] == 200


async def _delivered(hub: TestClient, webhook_id: int) -> dict[str, Any] | None:
    log = await deliveries(hub, webhook_id)
    return log if log["data"] and log["data"][0]["state"] == "delivered" else None


async def test_410_disables_the_webhook_until_it_is_reactivated(make_hub, receiver):
    hub = await make_hub(**LOCAL)
    await add_device(hub, "shop-phone-1")
    receiver.script["/hook"] = [410]
    hook = await register(hub, receiver, ["sms.received"])
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        await phone.send_inbound(SENDER, "first")
        await receiver.count("/hook", 1)
        webhook = await until(lambda: _inactive(hub, hook["id"]))
        assert webhook["disabledReason"] == "the receiver answered 410 Gone"
        await phone.send_inbound(SENDER, "while disabled")
        await asyncio.sleep(0.5)
        assert len(receiver.requests) == 1  # a disabled webhook gets nothing
        [delivery] = (await deliveries(hub, hook["id"]))["data"]
        assert delivery["state"] == "failed"
        assert delivery["attempts"][0]["statusCode"] == 410

        resp = await hub.patch(f"/api/webhooks/{hook['id']}", json={"active": True},
                               headers=basic())
        body = await resp.json()
        assert resp.status == 200 and body["active"] is True
        assert body["disabledReason"] is None and body["failingSince"] is None
        await phone.send_inbound(SENDER, "back again")
        [_, event] = await receiver.count("/hook", 2)
        assert event["data"]["message"] == "back again"


async def _inactive(hub: TestClient, webhook_id: int) -> dict[str, Any] | None:
    webhook = await get(hub, f"/api/webhooks/{webhook_id}")
    return None if webhook["active"] else webhook


async def test_a_webhook_failing_for_the_whole_window_is_disabled(make_hub, receiver):
    # 0.0004 hours: about 1.4 seconds without a success.
    hub = await make_hub(**LOCAL, SMSNODES_WEBHOOKS_DISABLE_AFTER_HOURS="0.0004")
    await add_device(hub, "shop-phone-1")
    receiver.default = 503
    hook = await register(hub, receiver, ["sms.received"])
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        await phone.send_inbound(SENDER, "nobody listens")
        webhook = await until(lambda: _inactive(hub, hook["id"]))
        assert webhook["disabledReason"] == "no successful delivery for 0.0004 hours"
        assert webhook["failingSince"] is not None
        tried = len(receiver.requests)
        assert tried >= 3  # retried in the meantime
        await asyncio.sleep(0.5)
        assert len(receiver.requests) == tried  # and not after
    assert receiver.events("/hook")[0]["data"]["message"] == "nobody listens"


async def test_a_delivery_is_given_up_after_the_retry_window(make_hub, receiver):
    # 0.0003 hours: about a second of retries, then `failed`; the webhook stays active.
    hub = await make_hub(**LOCAL, SMSNODES_WEBHOOKS_RETRY_FOR_HOURS="0.0003")
    await add_device(hub, "shop-phone-1")
    receiver.default = 500
    hook = await register(hub, receiver, ["sms.received"])
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        await phone.send_inbound(SENDER, "in vain")
        log = await until(lambda: _in_state(hub, hook["id"], "failed"))
        tried = len(receiver.requests)
        await asyncio.sleep(0.5)
        assert len(receiver.requests) == tried
    [delivery] = log["data"]
    assert len(delivery["attempts"]) == tried >= 3
    assert delivery["attempts"][-1]["nextRetryAt"] is None
    first = receiver.requests[0].at
    assert receiver.requests[-1].at - first >= 0.9  # retried for the whole window
    assert (await get(hub, f"/api/webhooks/{hook['id']}"))["active"] is True


async def _in_state(hub: TestClient, webhook_id: int, state: str) -> dict[str, Any] | None:
    log = await deliveries(hub, webhook_id)
    return log if log["data"] and log["data"][0]["state"] == state else None


# -- Safety -------------------------------------------------------------------------------------


async def test_redirects_are_not_followed(make_hub, receiver):
    hub = await make_hub(**LOCAL)
    await add_device(hub, "shop-phone-1")
    receiver.script["/hook"] = [302]
    receiver.location = receiver.url("/elsewhere")
    hook = await register(hub, receiver, ["sms.received"])
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        await phone.send_inbound(SENDER, "go away")
        await receiver.count("/hook", 2)  # the redirect was a failure: retried, same place
    assert receiver.on("/elsewhere") == []
    log = await until(lambda: _delivered(hub, hook["id"]))
    first = log["data"][0]["attempts"][0]
    assert first["statusCode"] == 302 and "not followed" in first["error"]


async def test_private_targets_are_refused_when_they_are_connected_to(
        make_hub, receiver, pool):
    """The operator allowed private targets, registered two, then turned it off: the hub
    connects to neither, whether the URL names a host that resolves to 127.0.0.1
    (checked by the resolver) or an IP literal (checked before connecting)."""
    first = await make_hub(**LOCAL)
    await add_device(first, "shop-phone-1")
    port = receiver.base.rsplit(":", 1)[1]
    by_name = await register(first, receiver, ["sms.received"], path="/by-name",
                             url=f"http://localhost:{port}/by-name")
    by_ip = await register(first, receiver, ["sms.received"], path="/by-ip",
                           url=f"http://127.0.0.1:{port}/by-ip")
    await first.close()
    hub = await make_hub(SMSNODES_WEBHOOKS_ALLOW_HTTP="true",
                         SMSNODES_WEBHOOKS_RETRY_BACKOFF="0.1")
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        await phone.send_inbound(SENDER, "do not leak")
        for hook in (by_name, by_ip):
            await until(lambda h=hook: _attempted(hub, h["id"]))
    assert receiver.requests == []
    for hook in (by_name, by_ip):
        [delivery] = (await deliveries(hub, hook["id"]))["data"]
        error = delivery["attempts"][0]["error"]
        assert error.startswith("refused:") and "public address" in error, error
        assert delivery["state"] == "pending"  # retried later, and refused again


async def _attempted(hub: TestClient, webhook_id: int) -> bool:
    log = await deliveries(hub, webhook_id)
    return bool(log["data"] and log["data"][0]["attempts"])


async def _latest_attempt(hub: TestClient, webhook_id: int) -> dict[str, Any] | None:
    log = await deliveries(hub, webhook_id)
    if log["data"] and log["data"][0]["attempts"]:
        return log["data"][0]["attempts"][-1]
    return None


async def test_allow_private_reaches_a_host_name_at_delivery(make_hub, receiver):
    """With allow_private, a name that resolves to a private address (here `localhost`) is
    not only accepted at registration but also connected to: the address checks are off at
    delivery too, as the docs say."""
    hub = await make_hub(**LOCAL)
    await add_device(hub, "shop-phone-1")
    port = receiver.base.rsplit(":", 1)[1]
    hook = await register(hub, receiver, ["sms.received"], path="/lan",
                          url=f"http://localhost:{port}/lan")
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        await phone.send_inbound(SENDER, "to the lan")
        [event] = await receiver.count("/lan", 1)
    assert event["data"]["message"] == "to the lan"
    [delivery] = (await until(lambda: _delivered(hub, hook["id"])))["data"]
    assert [(a["statusCode"], a["error"]) for a in delivery["attempts"]] == [(200, None)]


async def test_http_targets_are_refused_at_delivery_once_http_is_no_longer_allowed(
        make_hub, receiver):
    """Registered as http:// while allowed; the operator then turns allow_http off: no
    cleartext request is made, the refusal is recorded, and the delivery waits (retried,
    refused again) until the URL is changed to https:// or the setting comes back."""
    first = await make_hub(**LOCAL)
    await add_device(first, "shop-phone-1")
    hook = await register(first, receiver, ["sms.received"])
    await first.close()
    hub = await make_hub(SMSNODES_WEBHOOKS_ALLOW_PRIVATE="true",
                         SMSNODES_WEBHOOKS_RETRY_BACKOFF="0.1",
                         SMSNODES_WEBHOOKS_RETRY_BACKOFF_MAX="0.2")
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        await phone.send_inbound(SENDER, "not in cleartext")
        await until(lambda: _attempted(hub, hook["id"]))
        await until(lambda: _attempts_at_least(hub, hook["id"], 2))
    assert receiver.requests == []
    [delivery] = (await deliveries(hub, hook["id"]))["data"]
    assert delivery["state"] == "pending"
    for attempt in delivery["attempts"]:
        assert attempt["statusCode"] is None
        assert attempt["error"].startswith("refused: http:// not allowed"), attempt


async def _total_at_least(hub: TestClient, webhook_id: int, n: int) -> bool:
    return (await deliveries(hub, webhook_id))["total"] >= n


async def _attempts_at_least(hub: TestClient, webhook_id: int, n: int) -> bool:
    log = await deliveries(hub, webhook_id)
    return bool(log["data"] and len(log["data"][0]["attempts"]) >= n)


async def test_ipv6_and_ipv4_mapped_literals_are_refused_when_connected_to(
        make_hub, receiver, aiohttp_server):
    """`[::1]` and `[::ffff:127.0.0.1]` both reach a local receiver (shown first, with
    private targets allowed); once they are not allowed, neither is connected to."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    server6 = await aiohttp_server(app, host="::1")
    port = receiver.base.rsplit(":", 1)[1]
    first = await make_hub(**LOCAL)
    await add_device(first, "shop-phone-1")
    v6 = await register(first, receiver, ["sms.received"], path="/v6",
                        url=f"http://[::1]:{server6.port}/v6")
    mapped = await register(first, receiver, ["sms.received"], path="/mapped",
                            url=f"http://[::ffff:127.0.0.1]:{port}/mapped")
    async with SimulatedPhone(ws_url(first), "shop-phone-1", PASSWORD) as phone:
        await phone.send_inbound(SENDER, "reachable")
        await receiver.count("/v6", 1)
        await receiver.count("/mapped", 1)
    await first.close()
    tried = len(receiver.requests)

    hub = await make_hub(SMSNODES_WEBHOOKS_ALLOW_HTTP="true",
                         SMSNODES_WEBHOOKS_RETRY_BACKOFF="0.1")
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        await phone.send_inbound(SENDER, "do not leak")
        errors = {}
        for name, hook in (("::1", v6), ("::ffff:127.0.0.1", mapped)):
            # The phone does not wait for its `ok`: first the new event's delivery, then
            # its attempt (not the first hub's, which succeeded).
            await until(lambda h=hook: _total_at_least(hub, h["id"], 2))
            attempt = await until(lambda h=hook: _latest_attempt(hub, h["id"]))
            errors[name] = attempt["error"]
    assert len(receiver.requests) == tried  # nothing more reached either listener
    for name, error in errors.items():
        shown = error.removeprefix("refused: ").removesuffix(" is not a public address")
        # Python versions print a mapped address differently: compare the addresses.
        assert ipaddress.ip_address(shown) == ipaddress.ip_address(name), error


# -- Durability and exactly-once ----------------------------------------------------------------


async def test_the_event_and_the_state_change_commit_or_roll_back_together(
        make_hub, receiver, pool):
    hub = await make_hub(**LOCAL)
    await add_device(hub, "shop-phone-1")
    await register(hub, receiver, ["message.delivered"])
    principal = await hub.app[AUTH].login(pool, "shop-phone-1", PASSWORD)
    assert principal is not None
    resp = await hub.post("/api/send-sms", headers=basic(),
                          json={"phoneNumbers": [NUMBER], "message": "atomic"})
    message_id = (await resp.json())["messageId"]

    async def state() -> tuple[str, int]:
        return (await pool.fetchval("SELECT state FROM recipients WHERE message_id = $1",
                                    message_id),
                await pool.fetchval("SELECT count(*) FROM webhook_deliveries"))

    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        outcome = await reports.record_status(conn, principal, message_id, 1, NUMBER,
                                               "delivered", None)
        assert outcome.changed
        # Written by the same statement as the change...
        assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries") == 1
        await tx.rollback()
    assert await state() == ("pending", 0)  # ...and gone with it

    with pytest.raises(ZeroDivisionError):
        async with pool.acquire() as conn, conn.transaction():
            await reports.record_status(conn, principal, message_id, 1, NUMBER,
                                         "delivered", None)
            raise ZeroDivisionError  # the caller's transaction fails after the change
    assert await state() == ("pending", 0)
    await asyncio.sleep(0.6)
    assert receiver.requests == []  # nothing was announced for what never happened

    await reports.record_status(pool, principal, message_id, 1, NUMBER, "delivered", None)
    assert await state() == ("delivered", 1)  # committed: both, and it is delivered
    [event] = await receiver.count("/hook", 1)
    assert event["data"]["messageId"] == message_id and event["data"]["to"] == NUMBER


async def _install_outbox_failure(pool: Any) -> None:
    """A trigger (in this test's own database) that makes every outbox insert fail, as a
    full disk or a broken constraint would."""
    await pool.execute("""
        CREATE FUNCTION test_refuse_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'outbox insert refused (test)'; END $$;
        CREATE TRIGGER test_refuse_outbox BEFORE INSERT ON webhook_deliveries
            FOR EACH ROW EXECUTE FUNCTION test_refuse_outbox();
    """)


async def test_a_failing_outbox_insert_leaves_no_state_change(make_hub, receiver, pool):
    """No change without its event: when the outbox row cannot be written, the status
    report, the received SMS and the cancellation are not recorded either."""
    hub = await make_hub(**LOCAL)
    await add_device(hub, "shop-phone-1")
    await register(hub, receiver, ["message.delivered", "sms.received", "message.cancelled"])
    principal = await hub.app[AUTH].login(pool, "shop-phone-1", PASSWORD)
    assert principal is not None
    sent = []
    for text in ("to be delivered", "to be cancelled"):
        resp = await hub.post("/api/send-sms", headers=basic(),
                              json={"phoneNumbers": [NUMBER], "message": text})
        sent.append((await resp.json())["messageId"])
    delivered, cancelled = sent

    async def snapshot() -> list[Any]:
        return [
            [tuple(r) for r in await pool.fetch(
                "SELECT message_id, state FROM recipients ORDER BY message_id")],
            [tuple(r) for r in await pool.fetch("SELECT id, state FROM messages ORDER BY id")],
            await pool.fetchval("SELECT count(*) FROM message_timeline"),
            await pool.fetchval("SELECT count(*) FROM inbound_messages"),
            await pool.fetchval("SELECT count(*) FROM webhook_deliveries"),
        ]

    before = await snapshot()
    await _install_outbox_failure(pool)
    with pytest.raises(asyncpg.RaiseError, match="outbox insert refused"):
        await reports.record_status(pool, principal, delivered, 1, NUMBER, "delivered", None)
    with pytest.raises(asyncpg.RaiseError, match="outbox insert refused"):
        await inbound.store_inbound(pool, principal, "ref-1", SENDER, "lost?",
                                     datetime.now(UTC))
    with pytest.raises(asyncpg.RaiseError, match="outbox insert refused"):
        await withdrawal.cancel(pool, principal.account_id, cancelled)
    assert await snapshot() == before
    await asyncio.sleep(0.3)
    assert receiver.requests == []

    # The other direction for the other emitters: rolled back with the caller's transaction.
    await pool.execute("DROP TRIGGER test_refuse_outbox ON webhook_deliveries")
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        assert await inbound.store_inbound(conn, principal, "ref-1", SENDER, "rolled back",
                                            datetime.now(UTC))
        await withdrawal.cancel(conn, principal.account_id, cancelled)
        assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries") == 2
        await tx.rollback()
    assert await snapshot() == before

    # Once the outbox works, each change comes with its event.
    await inbound.store_inbound(pool, principal, "ref-1", SENDER, "arrives", datetime.now(UTC))
    await withdrawal.cancel(pool, principal.account_id, cancelled)
    got = await receiver.count("/hook", 2)
    assert sorted(e["type"] for e in got) == ["message.cancelled", "sms.received"]


async def test_an_oversized_payload_is_given_up_without_a_request(make_hub, receiver, pool):
    """Payloads are bounded (64 KiB): a body over the bound is never sent, the delivery
    ends `failed` with the reason, and the webhook keeps working."""
    hub = await make_hub(**LOCAL)
    await add_device(hub, "shop-phone-1")
    hook = await register(hub, receiver, ["sms.received"])
    principal = await hub.app[AUTH].login(pool, "shop-phone-1", PASSWORD)
    assert principal is not None
    # A phone cannot send this much; written directly, it stands for any oversized event.
    assert await inbound.store_inbound(pool, principal, "huge", SENDER, "x" * (70 * 1024),
                                        datetime.now(UTC))
    assert (await hub.get("/api/webhooks", headers=basic())).status == 200  # the key is here
    [delivery] = (await until(lambda: _in_state(hub, hook["id"], "failed")))["data"]
    assert [(a["statusCode"], a["error"], a["nextRetryAt"]) for a in delivery["attempts"]] == [
        (None, "payload too large", None)]
    assert receiver.requests == []
    assert (await get(hub, f"/api/webhooks/{hook['id']}"))["active"] is True
    assert await inbound.store_inbound(pool, principal, "small", SENDER, "x" * 1600,
                                        datetime.now(UTC))
    [event] = await receiver.count("/hook", 1)
    assert event["data"]["message"] == "x" * 1600  # the largest real text goes through


async def test_a_delivery_cut_off_by_a_hub_stop_is_delivered_after_restart(
        make_hub, receiver, pool):
    """The hub stops while the receiver is still answering: the delivery is handed back at
    once (not left to its lease), unrecorded, and the next hub delivers it with the same
    event id."""
    first = await make_hub(**LOCAL)
    await add_device(first, "shop-phone-1")
    hook = await register(first, receiver, ["sms.received"])
    receiver.delays = [3.0]  # the first answer is still coming when the hub stops
    async with SimulatedPhone(ws_url(first), "shop-phone-1", PASSWORD) as phone:
        await phone.send_inbound(SENDER, "cut off")
        await receiver.wait_for(lambda: len(receiver.requests) == 1)
    row = await pool.fetchrow("SELECT * FROM webhook_deliveries")
    assert row["locked_until"] is not None and row["state"] == "pending"  # claimed, in flight
    await first.close()
    row = await pool.fetchrow("SELECT * FROM webhook_deliveries")
    assert (row["state"], row["attempts"], row["locked_until"]) == ("pending", 0, None)
    assert await pool.fetchval("SELECT count(*) FROM webhook_attempts") == 0

    hub = await make_hub(**LOCAL)
    started = time.monotonic()
    assert (await hub.get("/api/webhooks", headers=basic())).status == 200  # the key is here
    [cut, again] = await receiver.count("/hook", 2)
    # Far sooner than the lease (2 x 10 s + 30 s) would have let anyone retry it.
    assert time.monotonic() - started < 10
    assert cut["id"] == again["id"] and again["data"]["message"] == "cut off"
    [delivery] = (await until(lambda: _delivered(hub, hook["id"])))["data"]
    assert delivery["eventId"] == cut["id"]
    assert [a["statusCode"] for a in delivery["attempts"]] == [200]


async def test_pending_deliveries_survive_a_restart_and_go_out_without_a_key(
        make_hub, receiver, pool):
    """Events that failed while the first hub ran are retried by the next one at once, with
    their original ids, although no key of the account is in its memory (no phone, no
    cached login): without the sender and the text, and saying so."""
    no_cache = {**LOCAL, "SMSNODES_SECURITY_CREDENTIAL_CACHE_SECONDS": "0"}
    first = await make_hub(**no_cache)
    await add_device(first, "shop-phone-1")
    receiver.default = 503  # down while the first hub runs
    await register(first, receiver, ["sms.received"])
    phone = SimulatedPhone(ws_url(first), "shop-phone-1", PASSWORD)
    await phone.start()
    for n in range(3):
        await phone.send_inbound(SENDER, f"while down {n}")
    await receiver.wait_for(lambda: len({r.headers["webhook-id"] for r in receiver.requests}) == 3)
    await phone.stop()
    await first.close()
    pending = await pool.fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'")
    assert pending == 3

    receiver.default = 200
    tried = len(receiver.requests)
    second = await make_hub(**no_cache)
    assert second.app[KEYRING].accounts() == []  # no key here, and none comes
    await receiver.wait_for(lambda: len({
        r.headers["webhook-id"] for r in receiver.requests[tried:]}) == 3)
    events = receiver.events("/hook")
    before = {e["id"] for e in events[:tried]}
    after = {e["id"] for e in events[tried:]}
    assert after == before  # the same events, with the same ids, correctly signed
    assert sorted(e["data"]["message"] for e in events[:tried])[0] == "while down 0"
    for event in events[tried:]:
        assert event["data"]["redacted"] == ["from", "message"]
        assert "from" not in event["data"] and "message" not in event["data"]
        assert event["data"]["username"] == "shop-phone-1"
    await until(lambda: pool.fetchval(
        "SELECT count(*) = 3 FROM webhook_deliveries WHERE state = 'delivered'"))


async def test_two_hub_processes_deliver_each_event_once(make_hub, receiver, pool):
    # Two slots each and slow answers: neither worker can drain the outbox alone in time,
    # so both take part; every claim is watched to show that none is shared.
    slots = {"SMSNODES_WEBHOOKS_CONCURRENCY": "2"}
    hub_a = await make_hub(**LOCAL, **slots)
    hub_b = await make_hub(**LOCAL, **slots)
    await add_device(hub_a, "shop-phone-1")
    receiver.delays = [0.15] * 100
    await register(hub_a, receiver, ["sms.received"])
    assert (await hub_b.get("/api/webhooks", headers=basic())).status == 200  # key in b too
    assert hub_a.app[KEYRING].accounts() == hub_b.app[KEYRING].accounts() != []
    workers = {"a": hub_a.app[WEBHOOK_WORKER], "b": hub_b.app[WEBHOOK_WORKER]}
    claimed: dict[str, set[int]] = {name: set() for name in workers}
    stop = asyncio.Event()

    async def watch() -> None:
        # A claim lasts at least the receiver's 0.15 s: sampling every 10 ms sees each one.
        while not stop.is_set():
            for name, worker in workers.items():
                claimed[name].update(delivery_id for delivery_id, _ in worker._claims.values())
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    total = 24
    try:
        async with SimulatedPhone(ws_url(hub_a), "shop-phone-1", PASSWORD) as phone:
            await asyncio.gather(*(phone.send_inbound(SENDER, f"n{n}") for n in range(total)))
            await receiver.count("/hook", total, timeout=20)
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await watcher
    events = receiver.events("/hook")
    assert len(events) == total
    assert Counter(e["id"] for e in events).most_common(1)[0][1] == 1
    assert sorted(e["data"]["message"] for e in events) == sorted(f"n{n}" for n in range(total))
    assert await pool.fetchval("SELECT max(attempts) FROM webhook_deliveries") == 1
    all_ids = {r["id"] for r in await pool.fetch("SELECT id FROM webhook_deliveries")}
    assert claimed["a"] and claimed["b"], claimed  # both processes delivered
    assert claimed["a"].isdisjoint(claimed["b"])  # no delivery was claimed by both
    assert claimed["a"] | claimed["b"] == all_ids


async def test_device_online_and_offline_with_a_grace_period(make_hub, receiver):
    hub = await make_hub(**LOCAL, SMSNODES_WEBHOOKS_OFFLINE_GRACE="0.5")
    device_id = await add_device(hub, "shop-phone-1")
    await register(hub, receiver, ["device.online", "device.offline"])
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    [online] = await receiver.count("/hook", 1)
    assert online["type"] == "device.online"
    assert online["data"] == {"deviceId": device_id, "username": "shop-phone-1"}

    # A quick reconnect within the grace: neither offline nor a second online.
    await phone.close()
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    await asyncio.sleep(2.0)
    assert [e["type"] for e in receiver.events("/hook")] == ["device.online"]

    await phone.close()
    gone_at = time.monotonic()
    [_, offline] = await receiver.count("/hook", 2, timeout=5)
    assert offline["type"] == "device.offline" and offline["data"]["deviceId"] == device_id
    assert receiver.requests[-1].at - gone_at >= 0.5  # not before the grace
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    [*_, again] = await receiver.count("/hook", 3)
    assert again["type"] == "device.online"
    await phone.close()


async def test_a_database_dump_shows_no_secret_and_no_content(make_hub, receiver,
                                                             database_url, pool):
    hub = await make_hub(**LOCAL)
    await add_device(hub, "shop-phone-1")
    receiver.default = 500  # the outbox keeps its rows, with their attempts
    hook = await register(hub, receiver, ["sms.received", "message.delivered"])
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        await phone.send_inbound("+15557654321", "Your code is 884213")
        resp = await hub.post("/api/send-sms", headers=basic(), json={
            "phoneNumbers": ["+15559873210"], "message": "Parcel at locker 447120"})
        assert resp.status == 200
        await receiver.wait_for(lambda: {orjson.loads(r.body)["type"]
                                         for r in receiver.requests}
                                >= {"sms.received", "message.delivered"})
    dump = await pg_dump(database_url)
    assert b"COPY public.webhook_deliveries" in dump and b"sms.received" in dump
    assert b"message.delivered" in dump
    secret = hook["secret"]
    assert_absent(dump, "the webhook secret", secret.encode())
    assert_absent(dump, "the signing key", base64.b64decode(secret.removeprefix("whsec_")))
    for value in ("+15557654321", "Your code is 884213", "+15559873210",
                  "Parcel at locker 447120"):
        assert value[-6:].encode() not in dump, value
    # Nor in any plain column of the outbox and its log.
    plain = await pool.fetchval(
        "SELECT (SELECT string_agg(row_to_json(d)::text, ' ') FROM webhook_deliveries d)"
        " || (SELECT string_agg(row_to_json(a)::text, ' ') FROM webhook_attempts a)")
    assert "message.delivered" in plain
    for value in ("7654321", "9873210", "884213", "447120"):
        assert value not in plain, value
    # What the receiver got was decrypted: the dump's absence is not an accident.
    got = {e["type"]: e["data"] for e in receiver.events("/hook")}
    assert got["sms.received"]["message"] == "Your code is 884213"
    assert got["message.delivered"]["to"] == "+15559873210"
    assert got["message.delivered"]["message"] == "Parcel at locker 447120"
