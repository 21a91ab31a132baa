"""Typed keys for what the application shares between handlers (no module-level state).

The types are imported for the checker only: every module imports this one, and the
classes it names import most modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

if TYPE_CHECKING:
    from smsnodes_hub.auth.addresses import TrustedProxies
    from smsnodes_hub.auth.keyring import KeyRing
    from smsnodes_hub.auth.logins import Authenticator
    from smsnodes_hub.auth.throttle import LoginThrottle, RateLimiter
    from smsnodes_hub.auth.tokens import BearerCache
    from smsnodes_hub.bus import Bus
    from smsnodes_hub.config import Settings
    from smsnodes_hub.dashboard.metrics import HubMetrics
    from smsnodes_hub.device.hub import Hub
    from smsnodes_hub.webhooks.delivery import DeliveryWorker

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool")
AUTH: web.AppKey[Authenticator] = web.AppKey("auth")
BEARER_CACHE: web.AppKey[BearerCache] = web.AppKey("bearer_cache")
BUS: web.AppKey[Bus] = web.AppKey("bus")
HUB: web.AppKey[Hub] = web.AppKey("hub")
KEYRING: web.AppKey[KeyRing] = web.AppKey("keyring")
LOGIN_THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("login_throttle")
SEND_LIMITER: web.AppKey[RateLimiter] = web.AppKey("send_limiter")
# server.trusted_proxies: whose X-Forwarded-For names the client (auth/addresses.py).
TRUSTED_PROXIES: web.AppKey[TrustedProxies] = web.AppKey("trusted_proxies")
WEBHOOK_WORKER: web.AppKey[DeliveryWorker] = web.AppKey("webhook_worker")
# Prometheus instruments (dashboard/metrics.py); the send path observes its latency there.
METRICS: web.AppKey[HubMetrics] = web.AppKey("metrics")
