"""Termux:API on Android: ``termux-sms-send``, ``termux-sms-list``, ``termux-battery-status``,
``termux-telephony-deviceinfo`` and ``termux-telephony-cellinfo``, all printing JSON.

Facts of the tools this module relies on (Termux:API's SmsSendAPI and SmsInboxAPI):

- ``termux-sms-send -n NUMBER [-s SLOT]`` reads the text from stdin when no text argument
  is given, prints nothing when Android took the SMS, and ``-s`` is Android's SIM slot
  index, 0-based (the hub's ``sim`` is 1-based: ``sim: 1`` is ``-s 0``). Android reports
  no delivery to it, so this radio reports ``sent`` and never ``delivered``.
- A missing permission is not an exit code: the tool prints
  ``{"error": "Please grant the following permission ..."}`` and exits 0.
- ``termux-sms-list -t inbox -l N`` prints the newest N SMS as a JSON array, oldest first,
  each with ``_id`` (Android's increasing row id), ``number``/``address``, ``body`` and
  ``received`` ("yyyy-MM-dd HH:mm:ss", the phone's local time).
- ``termux-sms-send`` hands the SMS to Android without asking for the radio's result, so a
  phone out of coverage would "send" into nothing. Before sending on the default SIM, the
  radio asks ``termux-telephony-deviceinfo``: a GSM-family phone registered on no network
  (``network_operator`` empty, ``network_type`` "unknown": Android's TelephonyManager) is
  reported ``RESULT_ERROR_NO_SERVICE`` without sending, which the hub retries later; a SIM
  that is absent or locked is reported as such, for good. Every failure of the tool itself
  (no permission, Termux:API missing, no answer) is reported with its text, not retried.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ..frames import iso, utc_now
from ..results import NO_SERVICE
from .base import DeviceInfo, InboundSms, Radio, RadioError, SendResult, Telemetry
from .proc import parse_json, run_tool

SEND_TIMEOUT = 60.0
QUERY_TIMEOUT = 20.0
LIST_LIMIT = 100
SERVICE_FRESH = 10.0  # seconds an "in service" answer is trusted; "no service" is asked again
SIM_UNUSABLE = frozenset({"absent", "pin_required", "puk_required", "network_locked"})


def _tool_error(payload: Any) -> str | None:
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return str(payload["error"])
    return None


def cannot_send(info: Any) -> SendResult | None:
    """The failure to report instead of sending, when ``termux-telephony-deviceinfo`` says
    the default SIM cannot send now; None when it can, or when the answer tells nothing."""
    if not isinstance(info, dict) or info.get("phone_type") != "gsm":
        return None  # no answer, or CDMA, whose network operator Android calls unreliable
    sim_state = info.get("sim_state")
    if sim_state in SIM_UNUSABLE:
        return SendResult(ok=False, error=f"the SIM cannot send: sim_state {sim_state}")
    if (sim_state == "ready" and info.get("network_operator") == ""
            and info.get("network_type") == "unknown"):
        return SendResult(ok=False, error=NO_SERVICE,
                          detail="termux-telephony-deviceinfo: registered on no network")
    return None


def _local_to_iso(value: Any) -> str:
    if isinstance(value, str):
        try:
            # Naive local time: astimezone() takes the agent's zone, the phone's own.
            return iso(datetime.strptime(value, "%Y-%m-%d %H:%M:%S").astimezone(UTC))
        except ValueError:
            pass
    return utc_now()


class TermuxRadio(Radio):
    name = "termux"
    sequential = True

    def __init__(self, poll_interval: float = 5.0) -> None:
        self.poll_interval = poll_interval
        self._sims = 1
        self._in_service_until = 0.0  # time.monotonic() until which no check is needed

    async def _device_info(self) -> Any:
        return parse_json(
            await run_tool(["termux-telephony-deviceinfo"], timeout=QUERY_TIMEOUT),
            "termux-telephony-deviceinfo",
        )

    async def device_info(self) -> DeviceInfo:
        try:
            info = await self._device_info()
        except RadioError:
            return DeviceInfo(model="Android (Termux)")
        sims = info.get("phone_count") if isinstance(info, dict) else None
        operator = info.get("network_operator_name") if isinstance(info, dict) else None
        extra = {"operator": operator} if isinstance(operator, str) and operator else {}
        self._sims = sims if isinstance(sims, int) and sims > 0 else 1
        return DeviceInfo(model="Android (Termux)", sims=self._sims, extra=extra)

    async def _check_service(self) -> SendResult | None:
        if time.monotonic() < self._in_service_until:
            return None
        try:
            refusal = cannot_send(await self._device_info())
        except RadioError:
            return None  # no answer (READ_PHONE_STATE not granted?): send and see
        if refusal is None:
            self._in_service_until = time.monotonic() + SERVICE_FRESH
        return refusal

    async def send(self, number: str, text: str, sim: int | None) -> SendResult:
        # deviceinfo describes the default SIM: another slot's SIM is not judged by it.
        if sim is None or self._sims == 1:
            refusal = await self._check_service()
            if refusal is not None:
                return refusal
        argv = ["termux-sms-send", "-n", number]
        if sim is not None:
            argv += ["-s", str(sim - 1)]
        # The text on stdin: never on argv, where other users could read it.
        result = await run_tool(argv, stdin=text, timeout=SEND_TIMEOUT)
        if result.code != 0:
            return SendResult(ok=False, error=result.error_text())
        out = result.stdout.strip()
        if out.startswith("{"):
            try:
                parsed = parse_json(result, "termux-sms-send")
            except RadioError:
                parsed = None
            error = _tool_error(parsed)
            if error is not None:
                return SendResult(ok=False, error=error)
        return SendResult(ok=True)

    async def poll_inbound(self, mark: int | None) -> list[InboundSms]:
        argv = ["termux-sms-list", "-t", "inbox", "-l", str(LIST_LIMIT)]
        listing = parse_json(await run_tool(argv, timeout=QUERY_TIMEOUT), "termux-sms-list")
        error = _tool_error(listing)
        if error is not None:
            raise RadioError(f"termux-sms-list: {error}")
        if not isinstance(listing, list):
            raise RadioError("termux-sms-list printed no JSON array")
        found: list[InboundSms] = []
        for item in listing:
            if not isinstance(item, dict):
                continue
            sms_id = item.get("_id")
            if not isinstance(sms_id, int) or isinstance(sms_id, bool):
                continue
            if item.get("type", "inbox") != "inbox" or (mark is not None and sms_id <= mark):
                continue
            sender = item.get("number") or item.get("address")
            found.append(
                InboundSms(
                    ref=f"termux-sms-{sms_id}",
                    sender=str(sender or ""),
                    text=str(item.get("body") or ""),
                    received_at=_local_to_iso(item.get("received")),
                    seq=sms_id,
                )
            )
        return sorted(found, key=lambda sms: sms.seq or 0)

    async def telemetry(self) -> Telemetry:
        battery: int | None = None
        charging: bool | None = None
        signal: int | None = None
        try:
            status = parse_json(
                await run_tool(["termux-battery-status"], timeout=QUERY_TIMEOUT),
                "termux-battery-status",
            )
            if isinstance(status, dict):
                pct = status.get("percentage")
                battery = pct if isinstance(pct, int) and not isinstance(pct, bool) else None
                plugged = status.get("plugged")
                if isinstance(plugged, str):
                    charging = plugged != "UNPLUGGED"
        except RadioError:
            pass
        try:
            cells = parse_json(
                await run_tool(["termux-telephony-cellinfo"], timeout=QUERY_TIMEOUT),
                "termux-telephony-cellinfo",
            )
            if isinstance(cells, list):
                levels = [
                    c["level"]
                    for c in cells
                    if isinstance(c, dict)
                    and c.get("registered")
                    and isinstance(c.get("level"), int)
                ]
                signal = max(levels) if levels else None
        except RadioError:
            pass
        return Telemetry(battery=battery, charging=charging, signal=signal)
