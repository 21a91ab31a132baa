"""GET /metrics in the Prometheus text format (prometheus-client), per application.

Each application has its own CollectorRegistry (no global registry: several hubs in one
process, as in the tests, never mix their numbers). Values kept in this process (the send
latency histogram, Argon2id runs, sockets held here) are read as they are; values that live
in PostgreSQL are fetched once per scrape, in one round trip under a short deadline, so a
slow database makes the scrape report `smsnodes_database_up 0` instead of hanging."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Iterator
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from smsnodes_hub.appkeys import AUTH, HUB, METRICS, POOL, SETTINGS
from smsnodes_hub.dashboard import queries
from smsnodes_hub.db import UNAVAILABLE
from smsnodes_hub.device.sessions import PROCESS_STALE
from smsnodes_hub.messaging.messages import STATUSES

log = logging.getLogger(__name__)

SCRAPE_BUDGET = 2.0  # seconds for the database part of a scrape
OPEN_STATES = ("scheduled", "queued", "dispatched", "accepted")
DELIVERY_STATES = ("pending", "delivered", "failed")
# From a millisecond (pushed to a connected phone) to the statement timeout.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0)


class HubMetrics:
    """The registry and the instruments the hot path touches (one observe() per send)."""

    __slots__ = ("collector", "registry", "send_latency")

    def __init__(self, app: web.Application) -> None:
        self.registry = CollectorRegistry()
        self.send_latency = Histogram(
            "smsnodes_send_latency_seconds",
            "Time to store an accepted POST /api/send-sms message and push it to a connected "
            "phone (after the login).",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.collector = _HubCollector(app)
        self.registry.register(self.collector)


class _HubCollector(Collector):
    """Reads the snapshot the handler fetched just before rendering, plus live values."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self.snapshot: asyncpg.Record | None = None

    def describe(self) -> list[Metric]:
        return []  # names are only known at collect time; no collect() at registration

    def collect(self) -> Iterator[Metric]:
        app = self._app
        yield CounterMetricFamily(
            "smsnodes_argon2id_runs", "Argon2id password derivations run by this process.",
            value=app[AUTH].kdf.runs,
        )
        yield GaugeMetricFamily(
            "smsnodes_process_connections", "Phone sockets held by this hub process.",
            value=len(app[HUB].connections),
        )
        row = self.snapshot
        yield GaugeMetricFamily("smsnodes_database_up",
                                "1 if the database answered this scrape in time.",
                                value=0 if row is None else 1)
        if row is None:
            return
        yield GaugeMetricFamily(
            "smsnodes_connected_devices",
            "Phones with a live authenticated socket, across every hub process.",
            value=row["connected"],
        )
        yield GaugeMetricFamily("smsnodes_devices", "Device accounts.", value=row["devices"])
        yield GaugeMetricFamily("smsnodes_hub_processes", "Live hub processes on the database.",
                                value=row["processes"])
        by_state = {state: 0 for state in OPEN_STATES}
        depth = GaugeMetricFamily("smsnodes_queue_depth",
                                  "Messages waiting for their phone (state queued), by priority.",
                                  labels=["priority"])
        queued = {priority: 0 for priority in range(1, 6)}
        for state, priority, count in row["open"]:
            by_state[state] += count
            if state == "queued":
                queued[priority] += count
        for priority, count in queued.items():
            depth.add_metric([str(priority)], count)
        messages = GaugeMetricFamily(
            "smsnodes_messages", "Messages not yet done, by state.", labels=["state"])
        for state, count in by_state.items():
            messages.add_metric([state], count)
        yield messages
        yield depth
        day = GaugeMetricFamily(
            "smsnodes_messages_last_day",
            "Messages created in the last 24 hours, by overall status.", labels=["status"])
        counts = {status: 0 for status in STATUSES}
        counts.update({status: count for status, count in row["day"]})
        for status, count in counts.items():
            day.add_metric([status], count)
        yield day
        hooks = GaugeMetricFamily(
            "smsnodes_webhook_deliveries_last_day",
            "Webhook deliveries of events from the last 24 hours, by state.", labels=["state"])
        delivery_counts = {state: 0 for state in DELIVERY_STATES}
        delivery_counts.update({state: count for state, count in row["hooks"]})
        for state, count in delivery_counts.items():
            hooks.add_metric([state], count)
        yield hooks
        yield GaugeMetricFamily("smsnodes_webhook_deliveries_pending",
                                "Webhook deliveries waiting to be made or retried.",
                                value=row["hooks_pending"])
        yield GaugeMetricFamily("smsnodes_webhooks_disabled",
                                "Webhooks disabled after failing too long.",
                                value=row["hooks_disabled"])


def setup(app: web.Application) -> None:
    app[METRICS] = HubMetrics(app)
    app.router.add_get("/metrics", get_metrics)


async def _snapshot(app: web.Application) -> asyncpg.Record | None:
    task = asyncio.ensure_future(queries.metrics_snapshot(app[POOL], PROCESS_STALE))
    # As in /api/health: abandon (not await) a query the database does not answer in time.
    task.add_done_callback(_reap)
    done, _ = await asyncio.wait({task}, timeout=SCRAPE_BUDGET)
    if not done:
        task.cancel()
        log.warning("/metrics: the database did not answer within %ss", SCRAPE_BUDGET)
        return None
    exc = task.exception()
    if exc is not None:
        if not isinstance(exc, UNAVAILABLE):
            log.warning("/metrics: database error: %s", exc)
        return None
    return task.result()


def _reap(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _authorized(request: web.Request) -> bool:
    expected = request.app[SETTINGS].dashboard.metrics_token
    if not expected:
        return True
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), expected.encode()
    )


async def get_metrics(request: web.Request) -> web.Response:
    if not _authorized(request):
        return web.Response(
            text="A bearer token is required (dashboard.metrics_token).\n", status=401,
            headers={"WWW-Authenticate": 'Bearer realm="smsnodes-hub metrics"'},
        )
    metrics = request.app[METRICS]
    snapshot = await _snapshot(request.app)
    # Set and rendered with no await in between: concurrent scrapes cannot mix snapshots.
    metrics.collector.snapshot = snapshot
    try:
        body = generate_latest(metrics.registry)
    finally:
        metrics.collector.snapshot = None
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST,
                                            "Cache-Control": "no-store"})
