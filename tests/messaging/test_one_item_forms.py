"""A lane's batch of one runs the one-item form of its statement (smsnodes_hub/
set_statements.py): it ends exactly as the set-based form does for that item in company,
and PostgreSQL keeps its plan instead of planning it again at every call."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from smsnodes_hub.appkeys import AUTH
from smsnodes_hub.auth.accounts import Principal
from smsnodes_hub.messaging import messages, reports, storing
from smsnodes_hub.messaging.reports import StatusReport
from tests.accounts_support import account_with_phones, set_quota
from tests.support import NUMBER, PASSWORD, add_device, basic, send

OTHER = "+1987654321"

# What a phone may say about a message, step by step: acks, reports (number, status,
# retry), repeated and late ones, and one about an attempt that is not the current one.
STORIES: list[list[tuple[Any, ...]]] = [
    [("ack",), ("report", NUMBER, "sent", False), ("report", NUMBER, "delivered", False)],
    [("report", NUMBER, "sent", False), ("ack",), ("report", NUMBER, "delivered", False)],
    [("report", NUMBER, "delivered", False), ("report", NUMBER, "sent", False)],
    [("ack",), ("report", NUMBER, "failed", True), ("report", OTHER, "sent", False)],
    [("report", OTHER, "failed", False), ("report", NUMBER, "delivered", False)],
    [("ack",), ("ack",), ("report", NUMBER, "failed", False), ("report", OTHER, "failed", False)],
    [("ack", 2), ("report", NUMBER, "sent", False, 2), ("report", "+1555000111", "sent", False)],
]


async def _snapshot(pool: Any, message_id: int) -> dict[str, Any]:
    """What a user of the API and the webhooks can tell about a message."""
    message = await pool.fetchrow(
        "SELECT state, status, attempt, accepted_at IS NOT NULL AS accepted, "
        "dispatched_to IS NULL AS released FROM messages WHERE id = $1", message_id)
    recipients = await pool.fetch(
        "SELECT position, state, error, attempt, delivered_at IS NOT NULL AS delivered "
        "FROM recipients WHERE message_id = $1 ORDER BY position", message_id)
    timeline = await pool.fetch(
        "SELECT status, position, attempt FROM message_timeline WHERE message_id = $1 "
        "ORDER BY at, id", message_id)
    hooks = await pool.fetch(
        "SELECT event_type, position, status, error, attempt FROM webhook_deliveries "
        "WHERE message_id = $1 ORDER BY position, event_type", message_id)
    return {"message": dict(message), "recipients": [dict(r) for r in recipients],
            "timeline": [tuple(r) for r in timeline], "hooks": [tuple(r) for r in hooks]}


def _timeless(value: Any, drop: frozenset[str] | set[str] = frozenset()) -> Any:
    """`value` without its ids in `drop` and its times (`at`, `...At`): what two messages
    stored a moment apart may differ in."""
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items()
                if k not in drop and k != "at" and not k.endswith("At")}
    return value


async def _tell(conn: Any, principal: Principal, message_id: int, step: tuple[Any, ...],
                company: int | None) -> tuple[Any, ...]:
    """One step of a story, alone or beside a step about another message (`company`)."""
    if step[0] == "ack":
        attempt = step[1] if len(step) > 1 else 1
        acks = [messages.Ack(principal.phone_id, message_id, attempt)]
        if company is not None:
            acks.append(messages.Ack(principal.phone_id, company, 1))
        return ((await messages.ack_all(conn, acks))[0],)
    _kind, number, status, retry, *attempt = step
    told = [StatusReport.of(principal, message_id, attempt[0] if attempt else 1, number,
                            status, "radio says no" if status == "failed" else None,
                            retry=retry)]
    if company is not None:
        told.append(StatusReport.of(principal, company, 1, NUMBER, "sent", None))
    outcome = (await reports.record_statuses(conn, told))[0]
    return (outcome.found, outcome.current_attempt, outcome.changed, outcome.accepted)


@pytest.mark.parametrize("story", STORIES)
async def test_a_lone_ack_or_report_ends_as_the_same_in_a_batch(make_hub, pool, story):
    hub = await make_hub(SMSNODES_WEBHOOKS_ALLOW_PRIVATE="true",
                         SMSNODES_WEBHOOKS_ALLOW_HTTP="true")
    await add_device(hub, "shop-phone-1")
    principal = await hub.app[AUTH].login(pool, "shop-phone-1", PASSWORD)
    assert principal is not None
    # Nothing listens on port 9: the deliveries stay queued, to be compared.
    resp = await hub.post("/api/webhooks", headers=basic(), json={
        "url": "http://127.0.0.1:9/hook",
        "events": ["message.sent", "message.delivered", "message.failed"]})
    assert resp.status == 201, await resp.text()
    alone, batched, company = [
        (await send(hub, text=text, numbers=[NUMBER, OTHER]))["messageId"]
        for text in ("alone", "batched", "company")]

    answers: dict[str, list[tuple[Any, ...]]] = {"alone": [], "batched": []}
    async with pool.acquire() as conn:
        for step in story:
            answers["alone"].append(await _tell(conn, principal, alone, step, None))
            answers["batched"].append(await _tell(conn, principal, batched, step, company))

    assert answers["alone"] == answers["batched"]
    assert await _snapshot(pool, alone) == await _snapshot(pool, batched)


async def test_a_lone_send_is_stored_as_the_same_in_a_batch(hub, pool):
    await add_device(hub, "shop-phone-1")
    principal = await hub.app[AUTH].login(pool, "shop-phone-1", PASSWORD)
    assert principal is not None

    def new(text: str, **fields: Any) -> messages.NewMessage:
        return messages.new_message(principal, priority=3, text=text,
                                    numbers=[NUMBER, OTHER], dispatch_to=None, notify=False,
                                    local_online=False, stale_seconds=15, sim=2, **fields)

    async with pool.acquire() as conn:
        alone = (await messages.insert_all(conn, [new("hello")]))[0]
        batched, _company = await messages.insert_all(conn, [new("hello"), new("company")])

    assert alone.id is not None and batched.id is not None
    assert (alone.device_id, alone.device_online, alone.remaining_quota) == (
        batched.device_id, batched.device_online, batched.remaining_quota)
    shown = []
    for message_id in (alone.id, batched.id):
        resp = await hub.get(f"/api/messages/{message_id}", headers=basic())
        body = await resp.json()
        assert resp.status == 200, body
        shown.append(_timeless(body, drop={"id", "messageId"}))
    assert shown[0] == shown[1]
    assert await _snapshot(pool, alone.id) == await _snapshot(pool, batched.id)


async def test_lone_writes_keep_their_plans(hub, pool):
    """Planning the ack's or a claim's statement again at every call cost more than running
    it; a statement with a kept (generic) plan shows few custom plans in
    pg_prepared_statements (PostgreSQL makes five before it compares)."""
    await add_device(hub, "shop-phone-1")
    principal = await hub.app[AUTH].login(pool, "shop-phone-1", PASSWORD)
    assert principal is not None
    calls = 12
    async with pool.acquire() as conn:
        for _ in range(calls):
            stored = (await messages.insert_all(conn, [messages.new_message(
                principal, priority=1, text="hi", numbers=[NUMBER], dispatch_to=None,
                notify=False, local_online=False, stale_seconds=15)]))[0]
            assert stored.id is not None
            await messages.ack_all(conn, [messages.Ack(principal.phone_id, stored.id, 1)])
            await reports.record_statuses(conn, [
                StatusReport.of(principal, stored.id, 1, NUMBER, "sent", None)])
            waiting = (await messages.insert_all(conn, [messages.new_message(
                principal, priority=1, text="later", numbers=[NUMBER], dispatch_to=None,
                notify=False, local_online=False, stale_seconds=15)]))[0]
            claimed = await messages.claim_all(conn, [messages.Claim(
                principal.phone_id, uuid.uuid4(), 1, None, principal.account_id)])
            assert [r["id"] for r in claimed[0]] == [waiting.id]
        plans = {r["statement"]: (r["generic_plans"], r["custom_plans"])
                 for r in await conn.fetch(
                     "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")}
    for name, statement, runs in (("store", storing._INSERT, 2 * calls),
                                  ("ack", messages._ACK, calls),
                                  ("report", reports._STATUS, calls),
                                  ("claim", messages._CLAIM, calls)):
        generic, custom = plans[statement.one]
        assert generic + custom == runs, name
        assert custom <= 5, (name, generic, custom)


@pytest.mark.parametrize("device", [None, "2", "no-such-phone"])
async def test_a_lone_routed_send_is_stored_as_the_same_in_a_batch(hub, pool, device):
    """Twin accounts with a quota of 3 SMS a day: each sends two messages of two SMS, one
    account alone, the other in company; the second send is over the quota either way."""
    await add_device(hub, "shop-phone-1")
    phone = await hub.app[AUTH].login(pool, "shop-phone-1", PASSWORD)
    assert phone is not None
    company = messages.new_message(phone, priority=2, text="company", numbers=[NUMBER],
                                   dispatch_to=None, notify=True, local_online=False,
                                   stale_seconds=15)
    seen: dict[str, list[tuple[Any, ...]]] = {}
    for name in ("alone", "batched"):
        await account_with_phones(hub, 2, name)
        await set_quota(pool, name, 3, 100)
        account = await hub.app[AUTH].login(pool, name, PASSWORD)
        assert account is not None and account.is_account
        pinned = None if device is None else (
            f"{name}-{device}" if device.isdigit() else device)
        seen[name] = []
        async with pool.acquire() as conn:
            for _ in range(2):
                new = messages.new_message(account, priority=2, text="routed",
                                           numbers=[NUMBER, OTHER], dispatch_to=None,
                                           notify=True, local_online=False,
                                           stale_seconds=15, device_name=pinned)
                batch = [new] if name == "alone" else [new, company]
                stored = (await messages.insert_all(conn, batch))[0]
                row = None if stored.id is None else tuple(await pool.fetchrow(
                    "SELECT state, status, routed, recipient_count, priority, "
                    "device_id IS NULL AS pooled FROM messages WHERE id = $1", stored.id))
                seen[name].append((
                    stored.id is None, stored.device and stored.device.replace(name, "*"),
                    stored.unknown_device, stored.device_online, stored.remaining_quota,
                    stored.over_quota, row))

    assert seen["alone"] == seen["batched"]
    first, second = seen["alone"]
    if device == "no-such-phone":
        assert first[0] and first[2]  # nothing stored, the device is unknown
    else:
        assert first[4] == 1 and second[5] == "day"  # 2 of 3 SMS used, then refused
