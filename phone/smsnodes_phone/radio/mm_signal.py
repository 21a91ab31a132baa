"""Signal bars (0..4, as Android's ``SignalStrength.getLevel()``) from ModemManager.

``mmcli -m M --signal-get -J`` gives the modem's readings per access technology, e.g.
``{"modem": {"signal": {"refresh": {"rate": "30"}, "lte": {"rsrp": "-98.00", ...}, ...}}}``
with ``"--"`` for what it does not have. ModemManager only takes readings while polling is
on, which ``mmcli -m M --signal-setup=SECONDS`` turns on (rate "0": off, every value
"--"). Without readings, the coarse ``signal-quality`` percent of ``mmcli -m M -J`` is used.
"""

from __future__ import annotations

from typing import Any

UNSET = "--"  # what mmcli's JSON prints for a value it does not have

# Android's default thresholds (CarrierConfigManager), weakest first: a reading at or above
# the k-th one is k bars. The first technology with a reading wins.
THRESHOLDS: tuple[tuple[str, str, tuple[int, int, int, int]], ...] = (
    ("5g", "rsrp", (-110, -90, -80, -65)),  # SS-RSRP, dBm
    ("lte", "rsrp", (-128, -118, -108, -98)),  # RSRP, dBm
    ("umts", "rscp", (-115, -105, -95, -85)),  # RSCP, dBm
    ("gsm", "rssi", (-107, -103, -97, -89)),  # RSSI, dBm
)


def get(tree: Any, *keys: str) -> Any:
    """tree[k1][k2]..., None where a level is missing or the value is mmcli's "--"."""
    for key in keys:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return None if tree == UNSET else tree


def _number(value: Any) -> float | None:
    try:
        return float(str(value)) if value is not None else None
    except ValueError:
        return None


def bars_from_readings(signal_get: Any) -> int | None:
    """Bars from ``--signal-get -J``'s answer, or None when it holds no reading."""
    for technology, key, thresholds in THRESHOLDS:
        reading = _number(get(signal_get, "modem", "signal", technology, key))
        if reading is not None:
            return sum(1 for threshold in thresholds if reading >= threshold)
    return None


def polling_off(signal_get: Any) -> bool:
    rate = get(signal_get, "modem", "signal", "refresh", "rate")
    return rate is None or _number(rate) == 0


def bars_from_quality(status: Any) -> int | None:
    """Bars from ``mmcli -m M -J``'s signal quality (percent), or None."""
    percent = _number(get(status, "modem", "generic", "signal-quality", "value"))
    if percent is None:
        return None
    return max(0, min(4, int(percent) // 20))
