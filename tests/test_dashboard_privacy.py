"""No dashboard page shows a message text or a phone number: messages with canary texts and
canary numbers go through the real API and a simulated phone (statuses, a failure, an
inbound SMS), then every page, fragment and search is read and searched for the canaries."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from device_sim import PhoneBehaviour, SimulatedPhone

from smsnodes_hub.appkeys import POOL

from .conftest import PASSWORD, add_device, ws_url
from .dashboard_support import OPERATOR_PASSWORD, HubFactory, key_file_in, logged_in
from .test_dashboard import route_paths
from .test_status_api import basic

TEXT = "CANARY-TEXT-4f7e1b"
INBOUND_TEXT = "CANARY-INBOUND-9c2d5a"
NUMBERS = ["+15557770101", "+15557770202"]
SENDER = "+15557770303"
# Digits only: a number leaking in any format (+, spaces, URL-encoded) still contains them.
CANARIES = [TEXT, INBOUND_TEXT, *(n.lstrip("+") for n in [*NUMBERS, SENDER]),
            "5557770101", PASSWORD, OPERATOR_PASSWORD]


@pytest.fixture
def make_hub(make_hub: HubFactory, tmp_path: Path) -> HubFactory:
    # conftest's make_hub, keeping the dashboard's key file in the test's folder.
    return key_file_in(make_hub, tmp_path)


@pytest.fixture
async def hub(make_hub: HubFactory) -> TestClient:
    return await make_hub()



async def test_no_page_shows_a_text_or_a_number(
    hub: TestClient, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    device_id = await add_device(hub, "shop-phone-1")
    await logged_in(hub)
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    requests = [
        {"phoneNumbers": NUMBERS, "message": TEXT, "priority": 5},
        {"phoneNumbers": NUMBERS[:1], "message": f"{TEXT} scheduled", "scheduledAt": later},
        {"phoneNumbers": NUMBERS[1:], "message": f"{TEXT} waits"},
    ]
    ids = []
    behaviour = PhoneBehaviour(fail_rate=0.5, seed=3, sent_delay=0.01, delivered_delay=0.01)
    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD, behaviour) as phone:
        for body in requests[:2]:
            ids.append(await _send(hub, body))
        await phone.send_inbound(SENDER, INBOUND_TEXT)
        await phone.wait_for(lambda: len(phone.reports) >= 2 and phone.outbox_size == 0)
        assert any(r["status"] == "failed" for r in phone.reports), "seed gives one failure"
    ids.append(await _send(hub, requests[2]))  # queued: the phone is gone
    # The canaries are really stored (their owner reads them back through the API).
    owner_view = await (await hub.get(f"/api/messages/{ids[0]}", headers=basic())).json()
    assert owner_view["message"] == TEXT
    assert await hub.app[POOL].fetchval("SELECT count(*) FROM inbound_messages") == 1

    pages = []
    for message_id in ids:
        pages += [path for method, path in route_paths(hub, device_id, message_id)
                  if method == "GET"]
    pages += [
        "/dashboard/messages?status=failed", "/dashboard/messages?status=partial",
        f"/dashboard/messages?device={device_id}", "/dashboard/messages?status=scheduled",
        f"/dashboard/messages?to={NUMBERS[0]}", "/docs", "/metrics",
    ]
    seen = 0
    for path in sorted(set(pages)):
        resp = await hub.get(path)
        # The dashboard cannot search by number (it holds no keys): `to` is a date, and a
        # number there is refused without being echoed.
        assert resp.status == (400 if "to=" in path else 200), path
        html = await resp.text()
        seen += len(html)
        for canary in CANARIES:
            assert canary not in html, (canary, path)
    assert seen > 50_000  # real pages were read
    # The hub's own logs (the test server's access log shows the URLs this test typed; the
    # hub runs without one).
    for record in caplog.records:
        if record.name == "aiohttp.access":
            continue
        for canary in CANARIES:
            assert canary not in record.getMessage(), (canary, record.getMessage())


async def _send(client: TestClient, body: dict[str, Any]) -> int:
    resp = await client.post("/api/send-sms", json=body, headers=basic())
    answer = await resp.json()
    assert resp.status == 200, answer
    return int(answer["messageId"])
