"""A failed send is reported in the protocol's vocabulary: a transient failure of the
radio as an Android result name the real hub retries (and then delivers), a permanent one
with the tool's own text, never longer than the hub accepts."""

from __future__ import annotations

from typing import Any

import pytest

from smsnodes_hub.messaging.retries import TRANSIENT_ERRORS
from smsnodes_phone import results
from smsnodes_phone.radio import mm_errors, sim, termux
from smsnodes_phone.radio.modem import ModemRadio
from smsnodes_phone.radio.termux import TermuxRadio
from tests.phone.agent import agent_for, running, send_to, wait_statuses
from tests.support import add_device, basic, get, until

A, B = "+15550001111", "+15550002222"
MM = "GDBus.Error:org.freedesktop.ModemManager1.Error."
NO_NETWORK = f"{MM}Message.NoNetwork: No network"
NO_SERVICE_INFO = {"network_operator": "", "network_operator_name": "",
                   "network_type": "unknown"}  # what Android says, registered nowhere


def test_every_failure_the_agent_calls_transient_is_one_the_hub_retries():
    reported = {*mm_errors.TRANSIENT_MM_ERRORS.values(),
                *(name for _, name in mm_errors.TRANSIENT_MMCLI_TEXTS),
                termux.NO_SERVICE, sim.FAILURE_ERROR}
    assert reported <= results.TRANSIENT <= TRANSIENT_ERRORS


async def message(hub: Any, msg_id: int) -> dict[str, Any]:
    return dict(await get(hub, f"/api/messages/{msg_id}", basic("phone-1")))


def failures(body: dict[str, Any]) -> list[tuple[int, str]]:
    return [(e["attempt"], e["error"]) for e in body["events"] if e["status"] == "failed"]


async def test_a_transient_modem_failure_is_retried_by_the_hub_and_then_delivered(
        make_hub, fake, tmp_path):
    hub = await make_hub(SMSNODES_DELIVERY_RETRY_BACKOFF="0.2")
    await add_device(hub, "phone-1")
    fake.control(fail={A: [NO_NETWORK]})  # the first try fails, the next one goes out
    async with running(agent_for(hub, fake, tmp_path, "modem")) as agent:
        await agent.wait_log("connected")
        msg_id = await send_to(hub, "phone-1", [A], "second time lucky")
        body = await wait_statuses(hub, "phone-1", msg_id, {A: "delivered"})
    assert body["attempt"] == 2
    assert failures(body) == [(1, "RESULT_ERROR_NO_SERVICE")]
    assert [s["text"] for s in fake.sent()] == ["second time lucky"]  # the failure sent nothing
    assert f"failed: error: couldn't send the SMS: '{NO_NETWORK}'" in agent.output()


async def test_a_phone_registered_nowhere_sends_nothing_and_the_hub_retries_later(
        make_hub, fake, tmp_path):
    hub = await make_hub(SMSNODES_DELIVERY_RETRY_BACKOFF="2")
    await add_device(hub, "phone-1")
    fake.control(deviceinfo=NO_SERVICE_INFO)
    async with running(agent_for(hub, fake, tmp_path, "termux")) as agent:
        await agent.wait_log("connected")
        msg_id = await send_to(hub, "phone-1", [A], "once back in coverage")
        first = await until(_failed_once(hub, msg_id), 10, "no failed attempt 1")
        assert fake.sent() == []  # termux-sms-send was never asked: it would drop the SMS
        assert first["recipients"][0]["status"] == "scheduled"  # waiting for its retry
        fake.control()  # back in coverage before the retry comes
        body = await wait_statuses(hub, "phone-1", msg_id, {A: "sent"})
    assert failures(body) == [(1, "RESULT_ERROR_NO_SERVICE")] and body["attempt"] == 2
    assert [s["text"] for s in fake.sent()] == ["once back in coverage"]
    assert "registered on no network" in agent.output()


def _failed_once(hub: Any, msg_id: int) -> Any:
    async def check() -> dict[str, Any] | None:
        body = await message(hub, msg_id)
        return body if failures(body) else None

    return check


async def test_a_permanent_failure_keeps_the_tools_words_within_the_hubs_limit(
        hub, fake, tmp_path):
    await add_device(hub, "phone-1")
    wordy = "Termux:API says: " + "the SMS could not be handed to Android. " * 10
    fake.control(fail={A: wordy, B: f"{MM}Core.Failed: Couldn't send SMS part"})
    async with running(agent_for(hub, fake, tmp_path, "termux")) as agent:
        await agent.wait_log("connected")
        msg_id = await send_to(hub, "phone-1", [A, B], "no luck")
        body = await wait_statuses(hub, "phone-1", msg_id, {A: "failed", B: "failed"})
    errors = {r["to"]: r["error"] for r in body["recipients"]}
    assert errors[A] == wordy[:199] + "…" and len(errors[A]) == results.MAX_ERROR
    assert errors[B] == f"{MM}Core.Failed: Couldn't send SMS part"
    assert body["attempt"] == 1 and fake.sent() == []  # not retried: it would fail again


@pytest.mark.parametrize(("tool_says", "reported"), [
    (NO_NETWORK, "RESULT_ERROR_NO_SERVICE"),
    (f"{MM}MobileEquipment.SimBusy: SIM busy", "RESULT_RIL_SIM_BUSY"),
    (f"{MM}Message.NetworkTimeout: Network timeout", "RESULT_NETWORK_ERROR"),
    (f"{MM}Core.Throttled: too many attempts", "RESULT_ERROR_LIMIT_EXCEEDED"),
    (f"{MM}Message.InvalidPduParameter: Invalid PDU mode parameter",
     f"error: couldn't send the SMS: '{MM}Message.InvalidPduParameter: "
     "Invalid PDU mode parameter'"),
])
async def test_mmcli_failures_are_named_as_the_hub_understands_them(
        fake, monkeypatch, tool_says, reported):
    fake.put_on_path(monkeypatch)
    fake.control(fail={A: tool_says})
    result = await ModemRadio().send(A, "hi", None)
    assert (result.ok, result.error) == (False, reported)
    assert result.detail is None or tool_says in result.detail
    assert fake.modem_objects() == {}  # the failed SMS does not stay on the modem


async def test_termux_judges_only_the_sim_its_device_info_describes(fake, monkeypatch):
    fake.put_on_path(monkeypatch)
    fake.control(deviceinfo={**NO_SERVICE_INFO, "phone_count": 2})
    radio = TermuxRadio()
    await radio.device_info()
    assert (await radio.send(A, "default SIM", None)).error == "RESULT_ERROR_NO_SERVICE"
    assert (await radio.send(A, "SIM 2, not judged", 2)).ok
    fake.control(deviceinfo={"sim_state": "absent"})
    assert (await radio.send(A, "no SIM", None)).error == "the SIM cannot send: sim_state absent"
    assert [s["text"] for s in fake.sent()] == ["SIM 2, not judged"]
