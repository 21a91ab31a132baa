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
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..frames import iso, utc_now
from .base import DeviceInfo, InboundSms, Radio, RadioError, SendResult, Telemetry
from .proc import parse_json, run_tool

SEND_TIMEOUT = 60.0
QUERY_TIMEOUT = 20.0
LIST_LIMIT = 100


def _tool_error(payload: Any) -> str | None:
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return str(payload["error"])
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

    async def device_info(self) -> DeviceInfo:
        try:
            info = parse_json(
                await run_tool(["termux-telephony-deviceinfo"], timeout=QUERY_TIMEOUT),
                "termux-telephony-deviceinfo",
            )
        except RadioError:
            return DeviceInfo(model="Android (Termux)")
        sims = info.get("phone_count") if isinstance(info, dict) else None
        operator = info.get("network_operator_name") if isinstance(info, dict) else None
        extra = {"operator": operator} if isinstance(operator, str) and operator else {}
        return DeviceInfo(
            model="Android (Termux)",
            sims=sims if isinstance(sims, int) and sims > 0 else 1,
            extra=extra,
        )

    async def send(self, number: str, text: str, sim: int | None) -> SendResult:
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
