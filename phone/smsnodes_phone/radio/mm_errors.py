"""What a failed ``mmcli`` send is reported as (see results.py for the rule).

mmcli prints ModemManager's D-Bus errors as ``error: couldn't send the SMS:
'GDBus.Error:org.freedesktop.ModemManager1.Error.<Domain>.<Nick>: <text>'`` (the domains
and nicks of ModemManager-errors.h), and its own words when the modem is not there or
not ready. Those below leave nothing sent and usually pass, so they become the transient
result names the hub retries; anything else, a timeout among them (the SMS may have gone
out), is reported with mmcli's text.
"""

from __future__ import annotations

import re

from ..results import (
    GENERIC_FAILURE,
    LIMIT_EXCEEDED,
    NETWORK_ERROR,
    NO_SERVICE,
    RADIO_NOT_AVAILABLE,
    RADIO_OFF,
    SIM_BUSY,
)
from .base import SendResult
from .proc import ToolResult

MM_ERROR = re.compile(r"org\.freedesktop\.ModemManager1\.Error\.(\w+\.\w+)")

TRANSIENT_MM_ERRORS = {
    "Message.NoNetwork": NO_SERVICE,  # +CMS ERROR: 331
    "MobileEquipment.NoNetwork": NO_SERVICE,  # +CME ERROR: 30
    "Message.NetworkTimeout": NETWORK_ERROR,  # +CMS ERROR: 332
    "MobileEquipment.NetworkTimeout": NETWORK_ERROR,  # +CME ERROR: 31
    "Message.SimBusy": SIM_BUSY,  # +CMS ERROR: 314
    "MobileEquipment.SimBusy": SIM_BUSY,  # +CME ERROR: 14
    "Core.Retry": GENERIC_FAILURE,  # "cannot yet be performed, retry later"
    "Core.ResetRetry": GENERIC_FAILURE,
    "Core.Throttled": LIMIT_EXCEEDED,  # "attempted too many times"
}

# mmcli's own messages, before anything reached the network.
TRANSIENT_MMCLI_TEXTS = (
    ("modem not enabled yet", RADIO_OFF),
    ("couldn't find modem", RADIO_NOT_AVAILABLE),
    ("couldn't find the ModemManager process", RADIO_NOT_AVAILABLE),
    ("couldn't find SMS at", RADIO_NOT_AVAILABLE),  # the modem went away before --send
)


def transient_name(text: str) -> str | None:
    """The transient result name for mmcli's error text, or None (a permanent failure)."""
    found = MM_ERROR.search(text)
    if found is not None:
        return TRANSIENT_MM_ERRORS.get(found.group(1))
    return next((name for phrase, name in TRANSIENT_MMCLI_TEXTS if phrase in text), None)


def send_failure(result: ToolResult) -> SendResult:
    text = result.error_text()
    name = transient_name(text)
    if name is None:
        return SendResult(ok=False, error=text)
    return SendResult(ok=False, error=name, detail=text)
