"""The seed's own Python example (tests/seed_example.py), run with real `requests` against a
live hub: a script written for SMS Nodes works unchanged."""

from __future__ import annotations

import ast
import asyncio
import os
import sys
from pathlib import Path

from aiohttp.test_utils import TestClient
from device_sim import SimulatedPhone

from tests.support import add_device, ws_url

EXAMPLE = Path(__file__).with_name("seed_example.py")
# The credentials written in the seed's example.
SEED_DEVICE = "your_device"
SEED_PASSWORD = "your_password"


async def run_example(api_base: str) -> tuple[int, str, str]:
    # A subprocess on the event loop, not subprocess.run: the hub answers on this same loop.
    env = {**os.environ, "NO_PROXY": "*", "no_proxy": "*"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), api_base, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_seed_python_example_sends_through_the_hub(hub: TestClient) -> None:
    await add_device(hub, SEED_DEVICE, SEED_PASSWORD)
    api_base = str(hub.make_url("")).rstrip("/")
    async with SimulatedPhone(ws_url(hub), SEED_DEVICE, SEED_PASSWORD) as phone:
        code, out, err = await run_example(api_base)
        assert code == 0, err
        assert out.startswith("SMS sent: "), out + err
        # The example prints the response dict with Python's repr.
        response = ast.literal_eval(out.removeprefix("SMS sent: ").strip())
        assert response["message"] == "SMS queued successfully"
        assert response["deviceOnline"] is True and response["sentImmediately"] is True
        [sms] = await phone.wait_for_sms(1)
    assert sms["id"] == response["messageId"]
    assert sms["to"] == ["+1234567890"]
    assert sms["message"] == "Hello from SMS Nodes!"


async def test_seed_python_example_reports_a_wrong_password(hub: TestClient) -> None:
    # The example's own error path: raise_for_status() on our 401.
    await add_device(hub, SEED_DEVICE, "a different password")
    code, out, err = await run_example(str(hub.make_url("")).rstrip("/"))
    assert code == 0, err
    assert out.startswith("Error: 401 Client Error"), out + err
