"""Battery and signal: what the fake termux and mmcli tools print reaches the hub as the
phone's presence (GET /api/device), and the modem's signal comes from --signal-get."""

from __future__ import annotations

from typing import Any

from smsnodes_phone.radio.modem import SIGNAL_RATE, ModemRadio
from tests.phone.agent import agent_for, running
from tests.support import add_device, basic, get, until

UNAUTHORIZED = ("GDBus.Error:org.freedesktop.ModemManager1.Error.Core.Unauthorized: "
                "PolicyKit authorization failed: not authorized for "
                "'org.freedesktop.ModemManager1.Device.Control'")


async def device_when(hub: Any, check: Any, what: str) -> dict[str, Any]:
    async def seen() -> dict[str, Any] | None:
        row = await get(hub, "/api/device", basic("phone-1"))
        return row if check(row) else None

    return await until(seen, 15, f"the hub never showed {what}")


async def test_the_phones_battery_and_signal_are_seen_at_the_hub(hub, fake, tmp_path):
    await add_device(hub, "phone-1")
    async with running(agent_for(hub, fake, tmp_path, "termux")):
        row = await device_when(hub, lambda r: r["telemetryAt"] is not None, "telemetry")
    # termux-battery-status: 87 %, plugged in; termux-telephony-cellinfo: the registered
    # cell's level 3 (not the stronger-looking neighbour's 1).
    assert (row["battery"], row["charging"], row["signal"]) == (87, True, 3)
    assert row["model"] == "Android (Termux)" and row["sims"] == 2


async def test_the_modems_signal_comes_from_its_readings_once_polling_is_on(
        hub, fake, tmp_path):
    await add_device(hub, "phone-1")
    # LTE RSRP -112 dBm is 2 bars on Android's scale; the signal quality (67 %) would say 3.
    agent = agent_for(hub, fake, tmp_path, "modem", "--telemetry-interval", "0.3")
    async with running(agent):
        row = await device_when(hub, lambda r: r["signal"] == 2, "the signal of --signal-get")
    assert fake.signal_rate() == SIGNAL_RATE  # the agent turned ModemManager's polling on
    assert row["battery"] is None and row["charging"] is None  # a modem has no battery


async def test_readings_taken_at_the_owners_rate_are_used_and_the_rate_is_left_alone(
        fake, monkeypatch):
    fake.put_on_path(monkeypatch)
    fake.signal(rate=10, readings={"gsm": {"rssi": "-95.00"}})  # 2G only, -95 dBm: 3 bars
    radio = ModemRadio()
    assert (await radio.telemetry()).signal == 3
    assert fake.signal_rate() == 10


async def test_without_readings_the_signal_quality_stands_in(fake, monkeypatch):
    fake.put_on_path(monkeypatch)
    notes: list[str] = []
    fake.signal(setup_error=UNAUTHORIZED)  # polling off, and not ours to turn on
    radio = ModemRadio()
    radio.on_note = notes.append
    assert [(await radio.telemetry()).signal for _ in range(2)] == [3, 3]  # 67 % is 3 bars
    assert fake.signal_rate() == 0
    assert notes == [f"mmcli --signal-setup failed, signal comes from the signal quality: "
                     f"error: couldn't setup signal quality information polling: "
                     f"'{UNAUTHORIZED}'"]  # once, not at every heartbeat

    fake.signal(extended=False)  # a modem without the Signal interface at all
    radio = ModemRadio()
    radio.on_note = notes.append
    assert (await radio.telemetry()).signal == 3
    assert notes[-1] == ("modem any has no extended signal readings: "
                         "signal comes from its signal quality")
