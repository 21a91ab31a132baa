"""Application wiring: AppKeys, resources in cleanup contexts, routes and middleware."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from smsnodes_hub import api, dashboard, db
from smsnodes_hub.api.errors import json_errors, quiet_malformed_requests
from smsnodes_hub.appkeys import (
    AUTH,
    BEARER_CACHE,
    BUS,
    HUB,
    KEYRING,
    LOGIN_THROTTLE,
    POOL,
    SEND_LIMITER,
    SETTINGS,
    TRUSTED_PROXIES,
    WEBHOOK_WORKER,
)
from smsnodes_hub.auth.addresses import TrustedProxies
from smsnodes_hub.auth.crypto import KdfParams, PasswordKdf
from smsnodes_hub.auth.keyring import KeyRing
from smsnodes_hub.auth.logins import Authenticator, CredentialCache
from smsnodes_hub.auth.throttle import Limits, LoginThrottle, RateLimiter
from smsnodes_hub.auth.tokens import BearerCache
from smsnodes_hub.bus import AccountChanged, Bus, CredentialsChanged, LoginFailed, TokenRevoked
from smsnodes_hub.config import Settings
from smsnodes_hub.device.endpoint import device_socket
from smsnodes_hub.device.hub import Hub
from smsnodes_hub.webhooks.delivery import DeliveryWorker
from smsnodes_hub.webhooks.hubkey import HubKeys

log = logging.getLogger(__name__)


def kdf_params(settings: Settings) -> KdfParams:
    sec = settings.security
    return KdfParams(sec.argon2_memory_kib, sec.argon2_iterations, sec.argon2_lanes)


def create_app(settings: Settings, dsn: str, *, migrate: bool = True) -> web.Application:
    """The hub as an aiohttp application on the database at `dsn`."""
    app = web.Application(middlewares=[json_errors], client_max_size=64 * 1024)
    quiet_malformed_requests()
    app[SETTINGS] = settings
    sec = settings.security
    throttle = LoginThrottle(Limits(
        sec.login_max_failures, sec.login_max_failures_per_username, sec.login_lockout_seconds
    ))
    app[LOGIN_THROTTLE] = throttle
    app[TRUSTED_PROXIES] = TrustedProxies(settings.server.trusted_proxies)
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
        ), throttle)
        # Failure records past their time are deleted by every process, now and then.
        upkeep = asyncio.create_task(throttle.keep_pruning(app[POOL]),
                                     name="login-throttle-upkeep")
        yield
        upkeep.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await upkeep
        kdf.close()

    async def events(app: web.Application) -> AsyncIterator[None]:
        # One LISTEN connection for the process; the hub's heartbeat keeps it open.
        events = Bus(dsn)
        _forget_revoked_logins(app, events)
        app[BUS] = events
        yield
        await events.stop()

    async def hub(app: web.Application) -> AsyncIterator[None]:
        hub = Hub(settings, app[POOL], app[BUS])
        app[HUB] = hub
        app[KEYRING] = KeyRing(
            sec.credential_cache_seconds,
            lambda: (conn.principal for conn in hub.connections.values()),
            lambda: hub.connections.generation,
        )
        await hub.start()
        yield
        await hub.stop()

    async def webhook_worker(app: web.Application) -> AsyncIterator[None]:
        # After the hub: it needs the keyring, and stops before the hub and the pool go.
        worker = DeliveryWorker(settings.webhooks, app[POOL], app[KEYRING], app[BUS],
                                HubKeys(settings))
        app[WEBHOOK_WORKER] = worker
        await worker.start()
        yield
        await worker.stop()

    app.cleanup_ctx.extend([database, authenticator, events, hub, webhook_worker])
    app.on_shutdown.append(_close_sockets)
    api.setup(app)
    dashboard.setup(app)
    app.router.add_get("/ws/device", device_socket)
    return app


def _forget_revoked_logins(app: web.Application, events: Bus) -> None:
    """Caches of verified logins drop what another process (or the CLI) revoked, and
    everything after the bus was down (a revocation may have been missed)."""

    def credentials_changed(event: CredentialsChanged) -> None:
        app[AUTH].cache.forget_device(event.device_id)
        app[BEARER_CACHE].forget_device(event.device_id)
        app[KEYRING].forget_device(event.device_id)

    def token_revoked(event: TokenRevoked) -> None:
        app[BEARER_CACHE].forget_token(event.token_id)

    def account_changed(event: AccountChanged) -> None:
        app[AUTH].cache.forget_account(event.account_id)
        app[BEARER_CACHE].forget_account(event.account_id)
        app[KEYRING].forget_account(event.account_id)

    async def missed_anything() -> None:
        app[AUTH].cache.clear()
        app[BEARER_CACHE].clear()
        # Also at start: which usernames failed lately, so cached logins of them ask first.
        await app[LOGIN_THROTTLE].resync(app[POOL])

    events.subscribe(CredentialsChanged, credentials_changed)
    events.subscribe(TokenRevoked, token_revoked)
    events.subscribe(AccountChanged, account_changed)
    events.subscribe(LoginFailed, app[LOGIN_THROTTLE].on_failed)
    events.on_resync(missed_anything)


async def _close_sockets(app: web.Application) -> None:
    # on_shutdown runs before the server waits for handlers: phones get 1001 at once.
    await app[HUB].stop()
