"""A pretend radio: sends succeed (or fail at ``fail_rate``) after a delay, and each sent
SMS is delivered ``delivered_delay`` seconds later. ``PhoneBehaviour`` also carries what the
test simulator (simulated.SimulatedPhone) varies about acking and reconnecting."""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass

from ..results import GENERIC_FAILURE
from .base import DeliveryReport, DeviceInfo, Radio, SendResult

FAILURE_ERROR = GENERIC_FAILURE  # transient: the hub retries it


@dataclass(frozen=True, slots=True)
class PhoneBehaviour:
    """How the simulated phone reacts; delays are in seconds."""

    ack: bool = True
    ack_delay: float = 0.0
    sent_delay: float | None = 0.0  # None: never report sent (nor delivered)
    delivered_delay: float | None = 0.0  # counted after sent; None: never report delivered
    fail_rate: float = 0.0  # fraction of recipients reported failed instead of sent
    use_refs: bool = True
    reconnect: bool = True
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("ack_delay", "sent_delay", "delivered_delay"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be within [0, 1], got {self.fail_rate}")
        if self.backoff_initial <= 0 or self.backoff_max < self.backoff_initial:
            raise ValueError("need 0 < backoff_initial <= backoff_max")


DEFAULT_BEHAVIOUR = PhoneBehaviour()  # frozen, so one shared default is safe


class SimRadio(Radio):
    name = "sim"
    poll_interval = 0.2

    def __init__(self, behaviour: PhoneBehaviour = DEFAULT_BEHAVIOUR) -> None:
        self.behaviour = behaviour
        self._rng = random.Random(behaviour.seed)
        self._counter = itertools.count(1)
        self._sent_at: dict[str, float] = {}

    async def device_info(self) -> DeviceInfo:
        return DeviceInfo(model="smsnodes-phone sim", sims=2)

    async def send(self, number: str, text: str, sim: int | None) -> SendResult:
        delay = self.behaviour.sent_delay
        if delay is None:
            await asyncio.Event().wait()  # never sent: hangs until the agent stops
        elif delay:
            await asyncio.sleep(delay)
        if self.behaviour.fail_rate and self._rng.random() < self.behaviour.fail_rate:
            return SendResult(ok=False, error=FAILURE_ERROR)
        handle = f"sim-{next(self._counter)}"
        if self.behaviour.delivered_delay is not None:
            self._sent_at[handle] = asyncio.get_running_loop().time()
        return SendResult(ok=True, handle=handle)

    async def poll_deliveries(self, handles: list[str]) -> list[DeliveryReport]:
        delay = self.behaviour.delivered_delay
        if delay is None:
            return []
        now = asyncio.get_running_loop().time()
        due = [h for h in handles if h in self._sent_at and now - self._sent_at[h] >= delay]
        for handle in due:
            del self._sent_at[handle]
        return [DeliveryReport(handle, delivered=True) for handle in due]
