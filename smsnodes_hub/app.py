"""Application wiring: AppKeys, resources in cleanup contexts, routes and middleware."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from smsnodes_hub import api, dashboard, db
from smsnodes_hub.api.errors import json_errors
from smsnodes_hub.appkeys import (
    AUTH,
    BEARER_CACHE,
    HUB,
    KEYRING,
    LOGIN_THROTTLE,
    POOL,
    SEND_LIMITER,
    SETTINGS,
    WEBHOOK_WORKER,
)
from smsnodes_hub.auth.accounts import Authenticator, CredentialCache
from smsnodes_hub.auth.crypto import KdfParams, PasswordKdf
from smsnodes_hub.auth.keyring import KeyRing
from smsnodes_hub.auth.throttle import LoginThrottle, RateLimiter
from smsnodes_hub.auth.tokens import BearerCache
from smsnodes_hub.config import Settings
from smsnodes_hub.device.endpoint import device_socket
from smsnodes_hub.device.hub import Hub
from smsnodes_hub.webhooks.delivery import DeliveryWorker

log = logging.getLogger(__name__)


def kdf_params(settings: Settings) -> KdfParams:
    sec = settings.security
    return KdfParams(sec.argon2_memory_kib, sec.argon2_iterations, sec.argon2_lanes)


def create_app(settings: Settings, dsn: str, *, migrate: bool = True) -> web.Application:
    """The hub as an aiohttp application on the database at `dsn`."""
    app = web.Application(middlewares=[json_errors], client_max_size=64 * 1024)
    app[SETTINGS] = settings
    sec = settings.security
    app[LOGIN_THROTTLE] = LoginThrottle(sec.login_max_failures, sec.login_lockout_seconds)
    app[SEND_LIMITER] = RateLimiter(settings.limits.send_per_minute)
    app[BEARER_CACHE] = BearerCache(sec.credential_cache_seconds)

    async def database(app: web.Application) -> AsyncIterator[None]:
        pool = await db.create_pool(dsn, settings.database)
        try:
            if migrate:
                # Its own connection: the migration's session lock never reaches the pool.
                conn = await db.connect(dsn)
                try:
                    await db.migrate(conn)
                finally:
                    await conn.close()
            app[POOL] = pool
            yield
        finally:
            await pool.close()

    async def authenticator(app: web.Application) -> AsyncIterator[None]:
        kdf = PasswordKdf(sec.kdf_concurrency)
        app[AUTH] = Authenticator(kdf, kdf_params(settings), CredentialCache(
            sec.credential_cache_seconds
        ))
        yield
        kdf.close()

    async def hub(app: web.Application) -> AsyncIterator[None]:
        hub = Hub(settings, app[POOL])
        hub.invalidation_hooks.append(_forget_logins(app))
        app[HUB] = hub
        app[KEYRING] = KeyRing(
            sec.credential_cache_seconds,
            lambda: [conn.principal for conn in hub.connections.values()],
        )
        await hub.start(dsn)
        yield
        await hub.stop()

    async def webhook_worker(app: web.Application) -> AsyncIterator[None]:
        # After the hub: it needs the keyring, and stops before the hub and the pool go.
        worker = DeliveryWorker(settings.webhooks, app[POOL], app[KEYRING], dsn)
        app[WEBHOOK_WORKER] = worker
        await worker.start()
        yield
        await worker.stop()

    app.cleanup_ctx.extend([database, authenticator, hub, webhook_worker])
    app.on_shutdown.append(_close_sockets)
    api.setup(app)
    dashboard.setup(app)
    app.router.add_get("/ws/device", device_socket)
    return app


def _forget_logins(app: web.Application) -> Callable[[str, int], None]:
    def forget(kind: str, ident: int) -> None:
        if kind == "credentials":
            app[AUTH].cache.forget_device(ident)
            app[BEARER_CACHE].forget_device(ident)
            app[KEYRING].forget_device(ident)
        elif kind == "token":
            app[BEARER_CACHE].forget_token(ident)
        elif kind == "all":  # the bus was down: a revocation may have been missed
            app[AUTH].cache.clear()
            app[BEARER_CACHE].clear()

    return forget


async def _close_sockets(app: web.Application) -> None:
    # on_shutdown runs before the server waits for handlers: phones get 1001 at once.
    await app[HUB].stop()
