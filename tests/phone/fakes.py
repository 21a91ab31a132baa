"""Fake Termux:API and ModemManager tools: real executables on PATH, printing what the
real ones print (shapes from termux-api's SmsInboxAPI/BatteryStatusAPI/TelephonyAPI and
mmcli's JSON output), with their failure styles. They keep their world in FAKE_RADIO_DIR:

- sent.jsonl: one line per SMS really handed to the radio (tool, number, slot, text);
- control.json: {"fail": {number: error text, or a list of them used up one per try},
  "slow": {number: seconds}, "deviceinfo": {what termux-telephony-deviceinfo says instead},
  "ghosts": [SMS numbers mmcli lists but cannot read]};
- inbox.json (termux): the SMS database termux-sms-list reads;
- mm/N.json (mmcli): ModemManager's SMS objects, by number;
- signal.json (mmcli): the modem's extended signal: {"extended": bool, "rate": seconds of
  ModemManager's polling (0: off, no readings), "setup_error": text or null, "readings":
  {technology: {key: value}}}.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

COMMON = r'''
import json, os, sys, time
from pathlib import Path
ROOT = Path(os.environ["FAKE_RADIO_DIR"])
def control():
    path = ROOT / "control.json"
    return json.loads(path.read_text()) if path.exists() else {"fail": {}, "slow": {}}
def record(entry):
    with (ROOT / "sent.jsonl").open("a") as fh:
        fh.write(json.dumps(entry) + "\n")
def failure(number):
    """The error this try at `number` fails with, or None; a list is used up in order."""
    ctl = control()
    error = ctl.get("fail", {}).get(number)
    if isinstance(error, list):
        if not error:
            return None
        error = error.pop(0)
        (ROOT / "control.json").write_text(json.dumps(ctl))
    return error
'''

TERMUX_SMS_SEND = COMMON + r'''
import getopt
try:
    opts, rest = getopt.getopt(sys.argv[1:], "hn:s:")
except getopt.GetoptError as exc:
    print(f"termux-sms-send: illegal option -{exc.opt}"); sys.exit(1)
opts = dict(opts)
if "-n" not in opts:
    print("termux-sms-send: no recipient number given"); sys.exit(1)
text = " ".join(rest) if rest else sys.stdin.read()
number = opts["-n"]
time.sleep(control().get("slow", {}).get(number, 0))
error = failure(number)
if error:
    # What Termux:API does without the permission: JSON on stdout, exit code 0.
    print(json.dumps({"error": error}))
    sys.exit(0)
record({"tool": "termux-sms-send", "number": number, "slot": opts.get("-s"), "text": text})
'''

TERMUX_SMS_LIST = COMMON + r'''
import getopt
opts = dict(getopt.getopt(sys.argv[1:], "hdl:t:f:cno:")[0])
limit = int(opts.get("-l", 10))
kind = opts.get("-t", "all")
path = ROOT / "inbox.json"
inbox = json.loads(path.read_text()) if path.exists() else []
rows = [m for m in inbox if kind == "all" or m["type"] == kind]
rows = sorted(rows, key=lambda m: m["_id"])[-limit:]  # the newest N, oldest first
print(json.dumps(rows, indent=2))
'''

TERMUX_BATTERY = r'''
import json
print(json.dumps({"present": True, "technology": "Li-ion", "health": "GOOD",
                  "plugged": "PLUGGED_USB", "status": "CHARGING", "temperature": 29.5,
                  "voltage": 4123, "current": 512000, "percentage": 87, "level": 87,
                  "scale": 100}, indent=2))
'''

TERMUX_DEVICEINFO = COMMON + r'''
print(json.dumps({**{"data_enabled": "true", "data_activity": "none", "data_state": "connected",
                  "device_id": None, "device_software_version": "01", "phone_count": 2,
                  "phone_type": "gsm", "network_operator": "20801",
                  "network_operator_name": "Orange F", "network_country_iso": "fr",
                  "network_type": "lte", "network_roaming": False, "sim_country_iso": "fr",
                  "sim_operator": "20801", "sim_operator_name": "Orange F",
                  "sim_serial_number": None, "sim_subscriber_id": None,
                  "sim_state": "ready"}, **control().get("deviceinfo", {})}, indent=2))
'''

TERMUX_CELLINFO = r'''
import json
print(json.dumps([
    {"type": "lte", "registered": True, "asu": 30, "dbm": -110, "level": 3,
     "timing_advance": 5, "ci": 123456, "pci": 17, "tac": 4321, "mcc": 208, "mnc": 1},
    {"type": "lte", "registered": False, "asu": 12, "dbm": -128, "level": 1, "pci": 40},
], indent=2))
'''

MMCLI = COMMON + r'''
import re
MM = ROOT / "mm"
MM.mkdir(exist_ok=True)
PREFIX = "/org/freedesktop/ModemManager1/SMS/"
args = sys.argv[1:]
as_json = "-J" in args or "--output-json" in args
args = [a for a in args if a not in ("-J", "--output-json")]
def fail(text):
    print(text, file=sys.stderr); sys.exit(1)
def objects():
    return sorted(int(p.stem) for p in MM.glob("*.json"))
def load(path):
    m = re.fullmatch(re.escape(PREFIX) + r"(\d+)", path) or re.fullmatch(r"(\d+)", path)
    f = MM / f"{m.group(1)}.json" if m else None
    if f is None or not f.exists():
        fail(f"error: couldn't find SMS at '{path}': 'not found in any modem'")
    return f, json.loads(f.read_text())
def new_object(sms):
    n = (max(objects()) + 1) if objects() else 0
    sms["sms"]["dbus-path"] = PREFIX + str(n)
    (MM / f"{n}.json").write_text(json.dumps(sms))
    return PREFIX + str(n)
def blank(number, text, pdu, state):
    return {"sms": {"dbus-path": "--", "content": {"number": number, "text": text, "data": "--"},
            "properties": {"pdu-type": pdu, "state": state, "validity": "--", "storage": "me",
                           "smsc": "+33689004000", "class": "--", "teleservice-id": "--",
                           "service-category": "--", "delivery-report": "--",
                           "message-reference": "--", "timestamp": "--",
                           "delivery-state": "--", "discharge-timestamp": "--"}}}
def signal_world():
    path = ROOT / "signal.json"
    world = {"extended": True, "rate": 0, "setup_error": None,
             "readings": {"lte": {"rsrp": "-112.00", "rsrq": "-11.00", "rssi": "-80.00",
                                  "snr": "8.20"}}}
    return path, {**world, **(json.loads(path.read_text()) if path.exists() else {})}
SIGNAL_KEYS = {"5g": ["error-rate", "rsrp", "rsrq", "rssi", "snr"],
               "cdma1x": ["ecio", "error-rate", "rssi"],
               "evdo": ["ecio", "error-rate", "io", "rssi", "sinr"],
               "gsm": ["error-rate", "rssi"],
               "lte": ["error-rate", "rsrp", "rsrq", "rssi", "snr"],
               "umts": ["ecio", "error-rate", "rscp", "rssi"]}
opts = {}
for a in args:
    k, _, v = a.partition("=")
    opts[k] = v
if "--signal-get" in opts or "--signal-setup" in opts:
    path, world = signal_world()
    if not world["extended"]:
        fail("error: modem has no extended signal capabilities")
    if "--signal-setup" in opts:
        if world["setup_error"]:
            fail("error: couldn't setup signal quality information polling: "
                 f"'{world['setup_error']}'")
        world["rate"] = int(opts["--signal-setup"])
        path.write_text(json.dumps(world))
        print("Successfully setup signal quality information polling")
    else:
        # ModemManager has readings only while it polls; mmcli prints "--" for the rest.
        signal = {tech: {k: (world["readings"].get(tech, {}).get(k, "--")
                             if world["rate"] else "--") for k in keys}
                  for tech, keys in SIGNAL_KEYS.items()}
        signal["refresh"] = {"rate": str(world["rate"])}
        signal["threshold"] = {"error-rate": "no", "rssi": "0"}
        print(json.dumps({"modem": {"signal": signal}}, sort_keys=True, separators=(",", ":")))
elif "-m" in args and len(args) == 2:  # modem status
    print(json.dumps({"modem": {"dbus-path": "/org/freedesktop/ModemManager1/Modem/0",
        "generic": {"manufacturer": "huawei", "model": "E3372", "state": "registered",
                    "signal-quality": {"recent": "yes", "value": "67"},
                    "access-technologies": ["lte"]}}}))
elif "--messaging-create-sms" in opts:
    props = dict(re.findall(r"([\w-]+)=('[^']*'|\"[^\"]*\"|[^,]*)", opts["--messaging-create-sms"]))
    number = props["number"].strip("'\"")
    text = Path(opts["--messaging-create-sms-with-text"]).read_text() \
        if "--messaging-create-sms-with-text" in opts else props.get("text", "").strip("'\"")
    sms = blank(number, text, "submit", "unknown")
    sms["sms"]["properties"]["delivery-report"] = (
        "requested" if props.get("delivery-report-request") == "yes" else "not requested")
    print("Successfully created new SMS: " + new_object(sms))
elif "--messaging-list-sms" in opts:
    # "ghosts": listed, then gone when read, as an SMS deleted meanwhile.
    paths = [PREFIX + str(n) for n in sorted([*objects(), *control().get("ghosts", [])])]
    if as_json:
        print(json.dumps({"modem.messaging.sms": paths}))
    else:
        print("\n".join(f"    {p} (received)" for p in paths) or "No sms messages were found")
elif "--messaging-delete-sms" in opts:
    f, _ = load(opts["--messaging-delete-sms"])
    f.unlink()
    print("successfully deleted SMS from modem")
elif "-s" in args and "--send" in args:
    f, sms = load(args[args.index("-s") + 1])
    number = sms["sms"]["content"]["number"]
    time.sleep(control().get("slow", {}).get(number, 0))
    error = failure(number)
    if error:
        fail(f"error: couldn't send the SMS: '{error}'")
    reference = str(100 + len(objects()))
    sms["sms"]["properties"].update({"state": "sent", "message-reference": reference})
    f.write_text(json.dumps(sms))
    record({"tool": "mmcli", "number": number, "slot": None, "text": sms["sms"]["content"]["text"]})
    report = blank(number, "--", "status-report", "received")
    report["sms"]["properties"].update({"message-reference": reference,
        "timestamp": "2026-11-21T10:00:03+01:00", "delivery-state": "completed-received",
        "discharge-timestamp": "2026-11-21T10:00:05+01:00"})
    new_object(report)
    print("successfully sent the SMS")
elif "-s" in args:
    _, sms = load(args[args.index("-s") + 1])
    print(json.dumps(sms))
else:
    fail("error: no actions specified")
'''

TOOLS = {
    "termux-sms-send": TERMUX_SMS_SEND,
    "termux-sms-list": TERMUX_SMS_LIST,
    "termux-battery-status": TERMUX_BATTERY,
    "termux-telephony-deviceinfo": TERMUX_DEVICEINFO,
    "termux-telephony-cellinfo": TERMUX_CELLINFO,
    "mmcli": MMCLI,
}


class FakeRadio:
    """The fake tools' bin directory and their shared world."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.world = root / "world"
        self.bin.mkdir(parents=True)
        self.world.mkdir()
        for name, body in TOOLS.items():
            path = self.bin / name
            path.write_text(f"#!{sys.executable}\n{body}")
            path.chmod(0o755)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["FAKE_RADIO_DIR"] = str(self.world)
        return env

    def put_on_path(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The tools for a radio driven in the test's own process."""
        for key in ("PATH", "FAKE_RADIO_DIR"):
            monkeypatch.setenv(key, self.env()[key])

    def control(self, fail: dict[str, str | list[str]] | None = None,
                slow: dict[str, float] | None = None,
                deviceinfo: dict[str, Any] | None = None,
                ghosts: list[int] | None = None) -> None:
        (self.world / "control.json").write_text(json.dumps(
            {"fail": fail or {}, "slow": slow or {}, "deviceinfo": deviceinfo or {},
             "ghosts": ghosts or []}))

    def signal(self, **world: Any) -> dict[str, Any]:
        """Change the modem's extended signal (keys of signal.json); returns it whole."""
        path = self.world / "signal.json"
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update(world)
        path.write_text(json.dumps(current))
        return current

    def signal_rate(self) -> int:
        path = self.world / "signal.json"
        return int(json.loads(path.read_text()).get("rate", 0)) if path.exists() else 0

    def sent(self) -> list[dict[str, Any]]:
        path = self.world / "sent.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def add_inbox(self, sms_id: int, number: str, body: str,
                  received: str = "2026-11-21 10:05:00") -> None:
        path = self.world / "inbox.json"
        inbox = json.loads(path.read_text()) if path.exists() else []
        inbox.append({"threadid": 1, "type": "inbox", "read": False, "address": number,
                      "number": number, "received": received, "body": body, "_id": sms_id})
        path.write_text(json.dumps(inbox))

    def modem_objects(self) -> dict[int, dict[str, Any]]:
        return {int(p.stem): json.loads(p.read_text())
                for p in (self.world / "mm").glob("*.json")}

    def modem_receive(self, number: str, text: str, timestamp: str) -> None:
        mm = self.world / "mm"
        mm.mkdir(exist_ok=True)
        n = max([int(p.stem) for p in mm.glob("*.json")], default=-1) + 1
        sms = {"sms": {"dbus-path": f"/org/freedesktop/ModemManager1/SMS/{n}",
                       "content": {"number": number, "text": text, "data": "--"},
                       "properties": {"pdu-type": "deliver", "state": "received",
                                      "storage": "sm", "smsc": "+33689004000",
                                      "timestamp": timestamp, "delivery-state": "--"}}}
        (mm / f"{n}.json").write_text(json.dumps(sms))
