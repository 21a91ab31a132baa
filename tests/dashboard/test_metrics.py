"""GET /metrics: valid Prometheus text, numbers that move with the hub, and the optional
bearer token."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from device_sim import SimulatedPhone
from prometheus_client.parser import text_string_to_metric_families

from tests.support import PASSWORD, add_device, send, ws_url

TOKEN = "scrape-me-please-0123"


async def scrape(client: TestClient, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """{sample name with labels: value} of one scrape, parsed by prometheus-client."""
    resp = await client.get("/metrics", headers=headers or {})
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def test_metrics_parse_and_move_when_messages_are_sent(hub: TestClient) -> None:
    await add_device(hub, "shop-phone-1")
    before = await scrape(hub)
    assert before["smsnodes_database_up"] == 1
    assert before["smsnodes_devices"] == 1 and before["smsnodes_connected_devices"] == 0
    assert before["smsnodes_queue_depth{priority=5}"] == 0
    assert before["smsnodes_send_latency_seconds_count"] == 0
    runs = before["smsnodes_argon2id_runs_total"]

    await send(hub, priority=5)
    await send(hub, priority=5)
    await send(hub, priority=2)
    after = await scrape(hub)
    assert after["smsnodes_queue_depth{priority=5}"] == 2
    assert after["smsnodes_queue_depth{priority=2}"] == 1
    assert after["smsnodes_messages{state=queued}"] == 3
    assert after["smsnodes_messages_last_day{status=queued}"] == 3
    assert after["smsnodes_send_latency_seconds_count"] == 3
    assert 0 < after["smsnodes_send_latency_seconds_sum"] < 10
    assert after["smsnodes_argon2id_runs_total"] == runs + 1  # then the credential cache

    async with SimulatedPhone(ws_url(hub), "shop-phone-1", PASSWORD) as phone:
        await phone.wait_for(lambda: len(phone.reports) == 6 and phone.outbox_size == 0)
        live = await scrape(hub)
        assert live["smsnodes_connected_devices"] == 1
        assert live["smsnodes_process_connections"] == 1
        assert live["smsnodes_messages{state=queued}"] == 0
        assert live["smsnodes_messages_last_day{status=delivered}"] == 3
        assert live["smsnodes_webhook_deliveries_last_day{state=failed}"] == 0


async def test_the_bearer_token_is_enforced_when_configured(make_hub: Any) -> None:
    hub = await make_hub(SMSNODES_DASHBOARD_METRICS_TOKEN=TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"}):
        resp = await hub.get("/metrics", headers=headers)
        assert resp.status == 401, headers
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert "smsnodes_" not in await resp.text()
    samples = await scrape(hub, {"Authorization": f"Bearer {TOKEN}"})
    assert samples["smsnodes_database_up"] == 1
    # Without a token configured, /metrics is open (see the test above).
