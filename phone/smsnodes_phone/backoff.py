"""Reconnect delays: exponential backoff with full jitter."""

from __future__ import annotations

import random


def full_jitter(rng: random.Random, failures: int, initial: float, cap: float) -> float:
    """Uniform over [0, min(cap, initial * 2**failures)]; the exponent is bounded."""
    return rng.uniform(0.0, min(cap, initial * 2 ** min(failures, 32)))
