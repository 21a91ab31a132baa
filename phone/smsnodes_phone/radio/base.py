"""The radio interface the gateway drives, and the values it exchanges with it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class RadioError(Exception):
    """The radio's tools are missing or answered nonsense (not a failed send)."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """One recipient's outcome. ``error`` is what the ``failed`` report carries: a transient
    result name of ``results`` (the hub retries it) or the tool's own text (it does not);
    with a name, ``detail`` keeps the tool's words for the log. ``handle`` names the sent
    SMS when the radio can later tell whether it was delivered (the modem's SMS object)."""

    ok: bool
    error: str | None = None
    handle: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    handle: str
    delivered: bool  # False: the network gave up (reported as failed)
    error: str | None = None
    cleanup: tuple[str, ...] = ()  # what forget_delivery() removes (the modem's SMS paths)


@dataclass(frozen=True, slots=True)
class InboundSms:
    """A received SMS. ``ref`` is its idempotency key at the hub (from the SMS's own id);
    ``seq`` orders it when the radio has increasing ids (Termux's ``_id``), else None."""

    ref: str
    sender: str
    text: str
    received_at: str  # ISO 8601 UTC with Z
    seq: int | None = None
    handle: str | None = None  # what forget_inbound() needs (the modem's SMS path)


@dataclass(frozen=True, slots=True)
class Telemetry:
    battery: int | None = None
    charging: bool | None = None
    signal: int | None = None  # 0..4, as Android's signal level

    def frame(self) -> dict[str, Any] | None:
        values = {"battery": self.battery, "charging": self.charging, "signal": self.signal}
        present = {k: v for k, v in values.items() if v is not None}
        return {"type": "heartbeat", **present} if present else None


@dataclass(slots=True)
class DeviceInfo:
    model: str = "smsnodes-phone"
    sims: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


class Radio:
    """What the gateway needs from a radio. Sends come one at a time."""

    name = "radio"
    #: where the radio says what the agent's log should show (set by the gateway)
    on_note: Callable[[str], None] | None = None
    #: seconds between polls for received SMS and delivery reports
    poll_interval = 5.0
    #: received SMS carry increasing ``seq`` numbers (a high-water mark works)
    sequential = False

    def note(self, text: str) -> None:
        if self.on_note is not None:
            self.on_note(text)

    async def device_info(self) -> DeviceInfo:
        return DeviceInfo()

    async def send(self, number: str, text: str, sim: int | None) -> SendResult:
        """Send one SMS to one number; ``sim`` is the 1-based SIM slot, None for default."""
        raise NotImplementedError

    async def poll_inbound(self, mark: int | None) -> list[InboundSms]:
        """SMS received since ``mark`` (for radios with ``seq``), oldest first."""
        return []

    async def forget_inbound(self, sms: InboundSms) -> None:
        """The hub stored ``sms`` (its ``ok`` came); a modem may delete it now."""

    async def poll_deliveries(self, handles: list[str]) -> list[DeliveryReport]:
        """Delivery outcomes known now for these sent SMS."""
        return []

    async def forget_delivery(self, report: DeliveryReport) -> None:
        """``report`` waits in the outbox now; a modem may delete what it came from."""

    async def telemetry(self) -> Telemetry:
        return Telemetry()
