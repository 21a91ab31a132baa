"""Typed keys for what the application shares between handlers (no module-level state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

if TYPE_CHECKING:
    pass

SETTINGS = web.AppKey("settings", "Settings")
POOL = web.AppKey("pool", asyncpg.Pool)
AUTH = web.AppKey("auth", "Authenticator")
BEARER_CACHE = web.AppKey("bearer_cache", "BearerCache")
BUS = web.AppKey("bus", "Bus")
HUB = web.AppKey("hub", "Hub")
KEYRING = web.AppKey("keyring", "KeyRing")
LOGIN_THROTTLE = web.AppKey("login_throttle", "LoginThrottle")
SEND_LIMITER = web.AppKey("send_limiter", "RateLimiter")
WEBHOOK_WORKER = web.AppKey("webhook_worker", "DeliveryWorker")
# Prometheus instruments (dashboard/metrics.py); the send path observes its latency there.
METRICS = web.AppKey("metrics", "HubMetrics")
