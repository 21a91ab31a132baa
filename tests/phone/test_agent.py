"""smsnodes-phone end to end: the agent as a real process, fake termux-*/mmcli tools on
PATH, and a real hub on loopback (tests/conftest.py's fixtures)."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys

from aiohttp.test_utils import TestServer

from smsnodes_hub.app import create_app
from smsnodes_phone.radio.termux import TermuxRadio
from tests.phone.agent import agent_for, inbound, running, send_to, wait_statuses
from tests.support import PASSWORD, ROOT, add_device, test_settings, until

A, B, FAILING = "+15550001111", "+15550002222", "+15550009999"
PERMISSION = ("Please grant the following permission to use this command: "
              "android.permission.SEND_SMS")


async def test_termux_sends_each_sms_once_and_the_hub_shows_it_sent(hub, fake, tmp_path):
    await add_device(hub, "phone-1")
    fake.control(slow={B: 0.8})  # acked at once, sent later: the ack waits for nothing
    agent = agent_for(hub, fake, tmp_path, "termux")
    async with running(agent):
        await agent.wait_log("connected")
        msg_id = await send_to(hub, "phone-1", [A, B], "hello from the hub")
        body = await wait_statuses(hub, "phone-1", msg_id, {A: "sent", B: "sent"})
        assert body["status"] == "sent"
        await asyncio.sleep(0.5)  # nothing more comes
        assert [(s["number"], s["text"], s["slot"]) for s in fake.sent()] == [
            (A, "hello from the hub", None), (B, "hello from the hub", None)]
        assert "reconnecting" not in agent.output()
    assert agent.proc is not None and agent.proc.returncode == 0
    # The token is kept for reconnects, readable by its user only; the password never shows.
    token = tmp_path / "state" / "token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state" / "state.json").stat().st_mode) == 0o600
    assert PASSWORD not in agent.output()


async def test_a_failed_send_is_reported_with_the_tools_error(hub, fake, tmp_path):
    await add_device(hub, "phone-1")
    fake.control(fail={FAILING: PERMISSION})
    async with running(agent_for(hub, fake, tmp_path, "termux")) as agent:
        await agent.wait_log("connected")
        msg_id = await send_to(hub, "phone-1", [A, FAILING], "one of two")
        body = await wait_statuses(hub, "phone-1", msg_id, {A: "sent", FAILING: "failed"})
    [failed] = [r for r in body["recipients"] if r["to"] == FAILING]
    assert failed["error"] == PERMISSION
    assert [s["number"] for s in fake.sent()] == [A]


async def test_inbound_sms_arrive_once_across_agent_restarts(hub, fake, tmp_path):
    await add_device(hub, "phone-1")
    fake.add_inbox(40, "+15557770000", "old, before the agent existed")
    agent = agent_for(hub, fake, tmp_path, "termux")
    async with running(agent):
        await agent.wait_log("1 SMS already in the inbox are not forwarded")
        fake.add_inbox(41, A, "STOP")
        await until(lambda: "inbound ref=termux-sms-41" in agent.output(), 10)
        await until_inbound(hub, 1)
    fake.add_inbox(42, B, "while the agent was down", received="2026-11-21 11:00:00")
    async with running(agent):
        await until_inbound(hub, 2)
        await asyncio.sleep(1.0)  # several polls: nothing is forwarded twice
    rows = await inbound(hub, "phone-1")
    assert sorted((r["from"], r["message"]) for r in rows) == [
        (A, "STOP"), (B, "while the agent was down")]
    assert agent.output().count("inbound ref=termux-sms-41") == 1


async def until_inbound(hub, count: int) -> None:
    for _ in range(150):
        if len(await inbound(hub, "phone-1")) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} inbound SMS at the hub")


async def test_modem_sends_reports_delivered_and_forwards_received_sms(hub, fake, tmp_path):
    await add_device(hub, "phone-1")
    fake.control(fail={FAILING: "GDBus.Error:org.freedesktop.ModemManager1.Error.Core.Failed:"
                                " Couldn't send SMS part: Serial command timed out"})
    async with running(agent_for(hub, fake, tmp_path, "modem")) as agent:
        await agent.wait_log("connected")
        text = "it's a \"quoted\", comma'd text"  # both quotes: only the text file can carry it
        msg_id = await send_to(hub, "phone-1", [A, FAILING], text)
        body = await wait_statuses(hub, "phone-1", msg_id, {A: "delivered", FAILING: "failed"})
        assert [(s["number"], s["text"]) for s in fake.sent()] == [(A, text)]
        [failed] = [r for r in body["recipients"] if r["to"] == FAILING]
        assert failed["error"].startswith("error: couldn't send the SMS: 'GDBus.Error")
        # The sent SMS, the failed one and the status report are gone from the modem.
        await until(lambda: fake.modem_objects() == {}, 5, str(fake.modem_objects()))

        fake.modem_receive(B, "reply via modem", "2026-11-21T10:07:00+01:00")
        await until_inbound(hub, 1)
        await until(lambda: fake.modem_objects() == {}, 5, "the received SMS stays")
    [row] = await inbound(hub, "phone-1")
    assert (row["from"], row["message"], row["receivedAt"]) == (
        B, "reply via modem", "2026-11-21T09:07:00.000Z")


async def test_the_agent_survives_a_hub_restart_with_its_token(make_hub, database_url, fake,
                                                               tmp_path, aiohttp_client):
    first = await make_hub()
    await add_device(first, "phone-1")
    port = first.server.port
    agent = agent_for(first, fake, tmp_path, "termux")
    async with running(agent):
        await agent.wait_log("via=password")
        one = await send_to(first, "phone-1", [A], "before")
        await wait_statuses(first, "phone-1", one, {A: "sent"})
        await first.close()
        await agent.wait_log("closed code=1001")
        second = await aiohttp_client(TestServer(
            create_app(test_settings(database_url), database_url, migrate=False),
            host="127.0.0.1", port=port))
        await agent.wait_log("via=token", timeout=15)
        two = await send_to(second, "phone-1", [B], "after")
        await wait_statuses(second, "phone-1", two, {B: "sent"})
        assert agent.proc is not None and agent.proc.returncode is None  # the same process
    assert [s["text"] for s in fake.sent()] == ["before", "after"]


async def test_termux_sends_from_the_sim_slot_the_frame_names(fake, monkeypatch):
    # The hub's `sim` is 1-based, Android's slot index (termux-sms-send -s) 0-based.
    fake.put_on_path(monkeypatch)
    radio = TermuxRadio()
    assert (await radio.send(A, "from SIM 2", 2)).ok
    assert (await radio.send(B, "default SIM", None)).ok
    assert [(s["number"], s["slot"]) for s in fake.sent()] == [(A, "1"), (B, None)]
    telemetry = await radio.telemetry()
    assert (telemetry.battery, telemetry.charging, telemetry.signal) == (87, True, 3)
    assert (await radio.device_info()).sims == 2


def run_cli(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> tuple[int, str]:
    environ = {k: v for k, v in os.environ.items() if k != "SMSNODES_PHONE_PASSWORD"}
    done = subprocess.run([sys.executable, "-m", "smsnodes_phone", *args], cwd=ROOT,
                          input=stdin, capture_output=True, text=True, timeout=30,
                          env={**environ, **(env or {})}, check=False)
    return done.returncode, done.stderr


async def test_a_hub_that_is_not_there_is_said_in_words(tmp_path):
    with socket.socket() as probe:  # a local port with nobody listening on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsnodes_phone", "--url", f"ws://127.0.0.1:{port}/ws/device",
        "--username", "p", "--radio", "sim", "--state-dir", str(tmp_path / "state"),
        "--password-stdin", cwd=ROOT, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"pw\n")
    proc.stdin.close()
    try:
        while b"cannot connect" not in (line := await asyncio.wait_for(proc.stdout.readline(), 20)):
            assert line, "the agent ended without saying why"
    finally:
        proc.kill()
        await proc.wait()
    assert b"connection refused (is the hub running on that port?)" in line, line
    assert b"ConnectionKey" not in line  # aiohttp's internals are not the user's business


def test_bad_settings_and_a_missing_password_exit_2_with_a_clear_error(tmp_path):
    base = ["--url", "ws://127.0.0.1:9/ws/device", "--username", "p", "--radio", "termux",
            "--state-dir", str(tmp_path / "state")]
    code, err = run_cli(*base)
    assert code == 2 and "no password: pass --password-stdin or set SMSNODES_PHONE_PASSWORD" in err
    code, err = run_cli(*base, "--password-stdin", stdin="\n")
    assert code == 2 and "empty password" in err
    code, err = run_cli("--url", "http://x", "--username", "p", "--radio", "sim",
                        env={"SMSNODES_PHONE_PASSWORD": "pw"})
    assert code == 2 and "ws:// or wss://" in err
    code, err = run_cli(*base[:4], "--radio", "carrier-pigeon", "--password-stdin", stdin="pw\n")
    assert code == 2 and "invalid choice" in err
    code, err = run_cli("--username", "p", "--radio", "sim", "--password-stdin", stdin="pw\n")
    assert code == 2 and "--url is required" in err
    config = tmp_path / "phone.toml"
    config.write_text('url = "ws://127.0.0.1:9/ws/device"\nusername = "p"\npassword = "x"\n')
    code, err = run_cli("--config", str(config), "--radio", "sim")
    assert code == 2 and "a password does not belong in a file" in err
    config.write_text('url = "ws://127.0.0.1:9/ws/device"\nusernme = "p"\n')
    code, err = run_cli("--config", str(config), "--radio", "sim")
    assert code == 2 and "unknown setting(s) usernme" in err
    code, err = run_cli("--config", str(tmp_path / "missing.toml"))
    assert code == 2 and "not found" in err


async def test_a_wrong_password_exits_1(hub, fake, tmp_path):
    await add_device(hub, "phone-1")
    agent = agent_for(hub, fake, tmp_path, "sim")
    await agent.start("not the password")
    assert agent.proc is not None
    assert await asyncio.wait_for(agent.proc.wait(), 15) == 1
    assert "Invalid credentials" in agent.output()
    assert "not the password" not in agent.output()
