"""A USB modem under ModemManager, through ``mmcli`` and its JSON output (``-J``).

- Send: ``mmcli -m ANY --messaging-create-sms="number='N',delivery-report-request=yes"
  --messaging-create-sms-with-text=/dev/stdin`` (text on stdin: mmcli's key=value parser
  has no escaping, so a text with both kinds of quote cannot go in ``text=...``); it prints
  the new SMS object's path. Then ``mmcli -s PATH --send``; a failure is a non-zero exit
  and ``error: couldn't send the SMS: '...'`` on stderr, reported as ``failed`` with that
  text, or, for a failure that leaves nothing sent and usually passes, with the result name
  the hub retries (mm_errors.py). ``mmcli -s PATH -J`` then gives the SMS's
  ``message-reference``.
- Delivery: the network's status report arrives as an SMS of ``pdu-type`` "status-report"
  with the same ``message-reference`` and a ``delivery-state``; "completed-*" is
  ``delivered``, "error-*" and "temporary-fatal-error-*" are ``failed``, "temporary-error-*"
  is still trying. Some ModemManager versions set ``delivery-state`` on the sent SMS itself
  instead; both are read.
- Receive: ``mmcli -m ANY --messaging-list-sms -J`` lists paths; those of ``pdu-type``
  "deliver" in ``state`` "received" are forwarded and deleted from the modem once the hub
  has stored them (a SIM's storage is small). Their ``ref`` is derived from the SMS itself
  (number, SMSC time stamp, text), because ModemManager renumbers its objects on restart.
- Signal: ``mmcli -m ANY --signal-get -J``'s readings as Android's 0..4 bars; when
  ModemManager's polling is off, the radio turns it on once with ``--signal-setup``, and
  until readings come (or when the modem has none) ``mmcli -m ANY -J``'s
  ``signal-quality`` percent is used (mm_signal.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from typing import Any

from ..frames import iso, parse_time, utc_now
from .base import DeliveryReport, DeviceInfo, InboundSms, Radio, RadioError, SendResult, Telemetry
from .mm_errors import send_failure
from .mm_signal import bars_from_quality, bars_from_readings, polling_off
from .mm_signal import get as _get
from .proc import ToolResult, parse_json, run_tool

SMS_PATH = re.compile(r"/org/freedesktop/ModemManager1/SMS/\d+")
SEND_TIMEOUT = 120.0
QUERY_TIMEOUT = 20.0
SIGNAL_RATE = 30  # seconds between ModemManager's signal readings, when the radio sets it
NO_EXTENDED_SIGNAL = "no extended signal capabilities"  # mmcli, for a modem without them


def _quote(value: str) -> str:
    for quote in ("'", '"'):
        if quote not in value:
            return f"{quote}{value}{quote}"
    raise RadioError(f"cannot quote {value!r} for mmcli")


def delivery_outcome(state: str | None) -> bool | None:
    """True delivered, False failed for good, None not known yet."""
    if not state or state == "unknown":
        return None
    if state.startswith("completed"):
        return True
    if state.startswith(("error", "temporary-fatal-error")):
        return False
    return None


class ModemRadio(Radio):
    name = "modem"

    def __init__(self, modem: str = "any", poll_interval: float = 5.0) -> None:
        self.modem = modem
        self.poll_interval = poll_interval
        self._kinds: dict[str, str] = {}  # SMS path -> pdu-type, for objects seen already
        self._signal_get = True  # False once the modem said it has no extended signal
        self._signal_setup_tried = False

    async def _mmcli(
        self, *args: str, stdin: str | None = None, timeout: float = QUERY_TIMEOUT
    ) -> ToolResult:
        return await run_tool(["mmcli", *args], stdin=stdin, timeout=timeout)

    async def _json(self, *args: str) -> Any:
        return parse_json(await self._mmcli(*args, "-J"), "mmcli " + " ".join(args))

    async def _sms(self, path: str) -> dict[str, Any]:
        info = _get(await self._json("-s", path), "sms")
        if not isinstance(info, dict):
            raise RadioError(f"mmcli -s {path}: no sms object in its answer")
        return info

    async def _listed_sms(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """The listed SMS objects that may be of pdu-type ``kind``, with their properties.

        One deleted between the listing and its reading (the sender drops a failed one) is
        skipped, not an error: it must not cost the poll everything found before it."""
        found = []
        for path in await self._listing():
            if self._kinds.get(path, kind) != kind:
                continue
            try:
                info = await self._sms(path)
            except RadioError:
                continue
            self._kinds[path] = str(_get(info, "properties", "pdu-type"))
            if self._kinds[path] == kind:
                found.append((path, info))
        return found

    async def _delete(self, path: str) -> None:
        await self._mmcli("-m", self.modem, f"--messaging-delete-sms={path}")
        self._kinds.pop(path, None)

    async def device_info(self) -> DeviceInfo:
        try:
            status = await self._json("-m", self.modem)
        except RadioError:
            return DeviceInfo(model="ModemManager modem")
        model = _get(status, "modem", "generic", "model")
        maker = _get(status, "modem", "generic", "manufacturer")
        name = " ".join(str(x) for x in (maker, model) if x) or "ModemManager modem"
        return DeviceInfo(model=name, sims=1)

    async def send(self, number: str, text: str, sim: int | None) -> SendResult:
        # One SIM per modem: `sim` cannot choose anything here and is ignored.
        created = await self._mmcli(
            "-m",
            self.modem,
            f"--messaging-create-sms=number={_quote(number)},delivery-report-request=yes",
            "--messaging-create-sms-with-text=/dev/stdin",
            stdin=text,
        )
        found = SMS_PATH.search(created.stdout)
        if created.code != 0 or found is None:
            return send_failure(created)
        path = found.group(0)
        self._kinds[path] = "submit"
        sent = await self._mmcli("-s", path, "--send", timeout=SEND_TIMEOUT)
        if sent.code != 0:
            with contextlib.suppress(RadioError):
                await self._delete(path)
            return send_failure(sent)
        reference = None
        with contextlib.suppress(RadioError):
            reference = _get(await self._sms(path), "properties", "message-reference")
        return SendResult(ok=True, handle=f"{path}#{reference or ''}")

    async def _listing(self) -> list[str]:
        listing = await self._json("-m", self.modem, "--messaging-list-sms")
        paths = listing.get("modem.messaging.sms") if isinstance(listing, dict) else None
        return [p for p in paths or [] if isinstance(p, str)]

    async def poll_inbound(self, mark: int | None) -> list[InboundSms]:
        found: list[InboundSms] = []
        for path, info in await self._listed_sms("deliver"):
            if _get(info, "properties", "state") != "received":
                continue
            number = str(_get(info, "content", "number") or "")
            text = str(_get(info, "content", "text") or "")
            stamp = _get(info, "properties", "timestamp")
            when = parse_time(stamp)
            digest = hashlib.sha256(f"{number}\n{stamp}\n{text}".encode()).hexdigest()[:32]
            found.append(
                InboundSms(
                    ref=f"mm-{digest}",
                    sender=number,
                    text=text,
                    received_at=iso(when) if when is not None else utc_now(),
                    handle=path,
                )
            )
        return found

    async def forget_inbound(self, sms: InboundSms) -> None:
        if sms.handle:
            await self._delete(sms.handle)

    async def poll_deliveries(self, handles: list[str]) -> list[DeliveryReport]:
        # Nothing is deleted here: forget_delivery() does it once the outcome is in the
        # outbox, so an outcome is never lost with its status report.
        wanted = {h.partition("#")[2]: h for h in handles if h.partition("#")[2]}
        reports: dict[str, DeliveryReport] = {}
        for path, info in await self._listed_sms("status-report"):
            handle = wanted.get(str(_get(info, "properties", "message-reference")))
            state = _get(info, "properties", "delivery-state")
            outcome = delivery_outcome(state)
            if handle is None or outcome is None:
                continue
            reports[handle] = DeliveryReport(handle, outcome, None if outcome else str(state),
                                             cleanup=(path, handle.partition("#")[0]))
        for handle in handles:
            if handle in reports:
                continue
            path = handle.partition("#")[0]
            try:
                state = _get(await self._sms(path), "properties", "delivery-state")
            except RadioError:
                continue
            outcome = delivery_outcome(state)
            if outcome is not None:
                reports[handle] = DeliveryReport(handle, outcome, None if outcome else str(state),
                                                 cleanup=(path,))
        return list(reports.values())

    async def forget_delivery(self, report: DeliveryReport) -> None:
        for path in report.cleanup:
            await self._delete(path)

    async def telemetry(self) -> Telemetry:
        bars = None
        if self._signal_get:
            with contextlib.suppress(RadioError):
                bars = await self._signal_readings()
        if bars is None:
            try:
                bars = bars_from_quality(await self._json("-m", self.modem))
            except RadioError:
                return Telemetry()
        return Telemetry(signal=bars)

    async def _signal_readings(self) -> int | None:
        answer = await self._mmcli("-m", self.modem, "--signal-get", "-J")
        if answer.code != 0:
            if NO_EXTENDED_SIGNAL in answer.error_text():
                self._signal_get = False
                self.note(f"modem {self.modem} has no extended signal readings: "
                          "signal comes from its signal quality")
            return None
        try:
            readings = parse_json(answer, "mmcli --signal-get")
        except RadioError:
            return None
        if not polling_off(readings):
            self._signal_setup_tried = False  # polling off again later: ModemManager restarted
        elif not self._signal_setup_tried:
            self._signal_setup_tried = True  # once, not at every heartbeat if it is refused
            setup = await self._mmcli("-m", self.modem, f"--signal-setup={SIGNAL_RATE}")
            if setup.code != 0:
                self.note(f"mmcli --signal-setup failed, signal comes from the signal "
                          f"quality: {setup.error_text()}")
        return bars_from_readings(readings)
