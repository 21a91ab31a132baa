"""The delivery worker that drains the outbox, its retry backoff and the outcome of an attempt."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import asyncpg
import orjson
from yarl import URL

from smsnodes_hub import __version__
from smsnodes_hub.auth.crypto import DecryptionError
from smsnodes_hub.auth.keyring import KeyRing
from smsnodes_hub.bus import Bus, WebhookQueued
from smsnodes_hub.config import WebhookSettings
from smsnodes_hub.db import FAILED, UNAVAILABLE
from smsnodes_hub.webhooks.hubkey import HubKeys
from smsnodes_hub.webhooks.payloads import build_event
from smsnodes_hub.webhooks.secret_source import Secrets
from smsnodes_hub.webhooks.signing import event_id, sign
from smsnodes_hub.webhooks.targets import (
    AddressNotAllowed,
    PublicResolver,
    address_allowed,
    ip_literal,
    trusted_cas,
    untrusted,
)

log = logging.getLogger(__name__)

MAX_PAYLOAD = 64 * 1024  # events are small (a text is at most 1600 characters)
MAX_RESPONSE = 4096  # bytes of a receiver's answer read (and thrown away)
POLL = 0.5  # seconds between looks at the outbox when nothing woke the worker
USER_AGENT = f"smsnodes-hub/{__version__} (webhooks)"


def backoff(attempts: int, base: float, ceiling: float) -> float:
    """Seconds after failed attempt number `attempts`: doubling from `base`, capped, less up
    to a quarter at random so that many failures at once (a receiver down for everyone) do
    not all come back together."""
    delay = min(ceiling, base * 2 ** min(max(0, attempts - 1), 32))
    return delay * random.uniform(0.75, 1.0)


# Claims due deliveries this process can sign: those whose secret its hub key sealed ($4),
# and those of the accounts whose keys are here ($1). Row locks (SKIP LOCKED) keep two
# processes off the same row while claiming, the lease keeps them off it while the request
# runs. Everything needed to build the payload comes back in the same round trip.
_CLAIM = """
WITH due AS (
    SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
     WHERE d.state = 'pending' AND d.next_attempt_at <= now()
       AND (d.locked_until IS NULL OR d.locked_until < now())
       AND (d.account_id = ANY($1::bigint[]) OR w.hub_key_id = $4) AND w.active
     ORDER BY d.next_attempt_at, d.id
     LIMIT $2
       FOR UPDATE OF d SKIP LOCKED
), claimed AS (
    UPDATE webhook_deliveries d SET locked_until = clock_timestamp() + make_interval(secs => $3)
      FROM due WHERE d.id = due.id
    RETURNING d.*
)
SELECT c.id, c.account_id, c.webhook_id, c.event_id, c.event_type, c.created_at, c.device_id,
       c.message_id, c.inbound_id, c.status, c.error, c.attempt, c.attempts, c.locked_until,
       c.first_attempt_at, w.url, w.secret, w.hub_secret, w.hub_key_id, dev.username,
       m.body AS message_body,
       r.number AS recipient_number, i.sender AS inbound_sender, i.body AS inbound_body,
       i.received_at
  FROM claimed c
  JOIN webhooks w ON w.id = c.webhook_id
  LEFT JOIN devices dev ON dev.id = c.device_id AND dev.account_id = c.account_id
  LEFT JOIN messages m ON m.id = c.message_id AND m.account_id = c.account_id
  LEFT JOIN recipients r ON r.message_id = m.id AND r.position = c.position
  LEFT JOIN inbound_messages i ON i.id = c.inbound_id AND i.account_id = c.account_id
 ORDER BY c.id
"""

# Each completion is fenced by the lease it was claimed with: a process that lost its lease
# (paused longer than it) changes nothing.
_SUCCEEDED = """
WITH d AS (
    UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1,
           delivered_at = now(), locked_until = NULL,
           first_attempt_at = coalesce(first_attempt_at, $3)
     WHERE id = $1 AND locked_until = $2
    RETURNING id, webhook_id, attempts
), a AS (
    INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code)
    SELECT id, attempts, $3, $4, $5 FROM d
), w AS (
    UPDATE webhooks SET last_success_at = now(), failing_since = NULL
     WHERE id IN (SELECT webhook_id FROM d)
)
SELECT count(*) FROM d
"""

# A failure: retried with backoff until the retry window (from the first attempt) is over,
# the last try falling on its end; then `failed`. The webhook is disabled by a 410 or after
# failing without a success for the disable window.
_FAILED = """
WITH d AS (
    UPDATE webhook_deliveries SET
        attempts = attempts + 1,
        locked_until = NULL,
        first_attempt_at = coalesce(first_attempt_at, $3),
        state = CASE WHEN $7 OR coalesce(first_attempt_at, $3) + make_interval(secs => $8)
                                <= now() THEN 'failed' ELSE 'pending' END,
        next_attempt_at = least(now() + make_interval(secs => $9),
                                coalesce(first_attempt_at, $3) + make_interval(secs => $8))
     WHERE id = $1 AND locked_until = $2
    RETURNING id, webhook_id, attempts, state, next_attempt_at
), a AS (
    INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code,
                                  error, next_retry_at)
    SELECT id, attempts, $3, $4, $5, $6, CASE WHEN state = 'pending' THEN next_attempt_at END
      FROM d
), w AS (
    UPDATE webhooks w SET
        failing_since = coalesce(w.failing_since, $3),
        active = NOT ($10 OR coalesce(w.failing_since, $3) <= now() - make_interval(secs => $11)),
        disabled_reason = CASE
            WHEN $10 THEN $12
            WHEN coalesce(w.failing_since, $3) <= now() - make_interval(secs => $11) THEN $13
            END,
        updated_at = CASE WHEN $10 OR coalesce(w.failing_since, $3)
                                      <= now() - make_interval(secs => $11)
                          THEN now() ELSE w.updated_at END
      FROM d WHERE w.id = d.webhook_id AND w.active
    RETURNING w.active
)
SELECT d.state, (SELECT bool_and(active) FROM w) AS active FROM d
"""

_RELEASE = """
UPDATE webhook_deliveries SET locked_until = NULL
 WHERE id = ANY($1::bigint[]) AND locked_until = ANY($2::timestamptz[])
"""

GONE_REASON = "the receiver answered 410 Gone"


@dataclass(frozen=True, slots=True)
class Outcome:
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


class DeliveryWorker:
    """Claims due deliveries, POSTs them signed, and records each attempt. Several processes
    may run one each. A delivery is made as soon as it is due: with the account's key in
    memory its payload is complete, without it the fields that key seals are left out
    (payloads.py); the signing secret's copy under the hub's key (hubkey.py) signs it."""

    __slots__ = (
        "_claims",
        "_session",
        "_stopped",
        "_task",
        "_wake",
        "keyring",
        "keys",
        "pool",
        "secrets",
        "settings",
    )

    def __init__(self, settings: WebhookSettings, pool: asyncpg.Pool, keyring: KeyRing,
                 events: Bus, keys: HubKeys) -> None:
        self.settings = settings
        self.pool = pool
        self.keyring = keyring
        self.keys = keys
        self.secrets = Secrets(pool, keyring, keys)
        self._wake = asyncio.Event()
        # Any process that commits an event wakes us; after the bus was down, look anyway.
        events.subscribe(WebhookQueued, lambda _event: self._wake.set())
        events.on_resync(self._resync)
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        # Deliveries in flight: their task, with the (id, lease) that fences them.
        self._claims: dict[asyncio.Task[None], tuple[int, datetime]] = {}

    @property
    def lease_seconds(self) -> float:
        # Longer than a request can take (the timeout bounds it) plus the time to record it.
        return self.settings.timeout * 2 + 30

    async def start(self) -> None:
        self.keys.current(create=False)  # a key file that cannot be used stops the start
        # allow_private turns the address checks off, at connect time too: aiohttp's own
        # resolver then, or a receiver.lan registered under that setting never gets anything.
        resolver = None if self.settings.allow_private else PublicResolver()
        connector = aiohttp.TCPConnector(resolver=resolver, limit=self.settings.concurrency,
                                         ssl=trusted_cas(self.settings))
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            trust_env=False,  # no proxy from the environment: targets are checked, not proxies
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": USER_AGENT},
        )
        self._task = asyncio.create_task(self._run(), name="webhook-worker")

    async def stop(self) -> None:
        """Stop claiming; abandon requests in flight and hand their rows back at once (the
        same event id is delivered again, by whichever process gets there)."""
        if self._stopped:
            return
        self._stopped = True
        tasks = [t for t in (self._task, *self._claims) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._claims:
            ids, leases = zip(*self._claims.values(), strict=True)
            with contextlib.suppress(*FAILED):
                await self.pool.execute(_RELEASE, list(ids), list(leases))
            self._claims.clear()
        if self._session is not None:
            await self._session.close()

    def wake(self) -> None:
        self._wake.set()

    # -- The loop -------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopped:
            self._wake.clear()
            full = False
            try:
                full = await self._claim()
            except asyncio.CancelledError:
                raise
            except UNAVAILABLE as exc:
                log.warning("database unavailable for webhook deliveries: %s", exc)
            except Exception:
                log.exception("webhook deliveries: claiming failed")
            if full:
                continue  # more may be due: claim again as soon as a slot frees
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
            # arrives as the wake-up does, and stop() would then wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL):
                    await self._wake.wait()

    async def _resync(self) -> None:
        self._wake.set()

    async def _claim(self) -> bool:
        """Claim into the free slots; True when every slot is now taken."""
        free = self.settings.concurrency - len(self._claims)
        if free <= 0:
            return False  # a finishing delivery wakes the loop
        accounts = self.keyring.accounts()
        await self.secrets.seal_for_hub(accounts)
        key_id = self.secrets.key_id()
        if not accounts and key_id is None:
            return False  # no webhook was ever sealed for this hub, and no key is here
        rows = await self.pool.fetch(_CLAIM, accounts, free, self.lease_seconds, key_id)
        for row in rows:
            task = asyncio.create_task(self._deliver(row), name=f"webhook-delivery-{row['id']}")
            self._claims[task] = (row["id"], row["locked_until"])
            task.add_done_callback(self._settled)
        return len(rows) == free

    def _settled(self, task: asyncio.Task[None]) -> None:
        if self._stopped:
            return
        self._claims.pop(task, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("webhook delivery failed unexpectedly", exc_info=exc)
        self._wake.set()

    async def _deliver(self, row: asyncpg.Record) -> None:
        lease = row["locked_until"]
        try:
            # Without the account's key the event still goes now, with its sealed fields
            # left out: a receiver alerting on events must not wait for a phone.
            principal = self.keyring.get(row["account_id"])
            try:
                secret = await self.secrets.for_delivery(row, principal)
            except DecryptionError:
                log.warning("webhook %s: its stored signing secret does not open",
                            row["webhook_id"])
                await self._record(row, Outcome(datetime.now(UTC), 0, None,
                                                "the signing secret does not open"),
                                   give_up=True)
                return
            if secret is None:  # nothing here opens it (the key left memory): wait
                await self.pool.execute(_RELEASE, [row["id"]], [lease])
                return
            body = orjson.dumps(build_event(principal, row))
            if len(body) > MAX_PAYLOAD:
                await self._record(row, Outcome(datetime.now(UTC), 0, None,
                                                "payload too large"), give_up=True)
                return
            outcome = await self._post(row["url"], event_id(row["event_id"]), secret, body)
            await self._record(row, outcome)
        except FAILED as exc:
            # The lease runs out and the delivery is tried again (same event id).
            log.warning("webhook %s: delivery not recorded: %s", row["webhook_id"], exc)

    async def _post(self, raw_url: str, message_id: str, secret: str,
                    body: bytes) -> Outcome:
        assert self._session is not None
        started = datetime.now(UTC)
        clock = time.monotonic()
        status: int | None = None
        error: str | None
        try:
            url = URL(raw_url)
            # The rules of registration hold at delivery: a webhook registered while
            # allow_http was on gets no cleartext once the operator turned it off.
            if url.scheme != "https" and not (url.scheme == "http"
                                              and self.settings.allow_http):
                raise AddressNotAllowed(
                    f"{url.scheme}:// not allowed (webhooks.allow_http is off): "
                    "change the webhook's url to https://")
            literal = ip_literal(url.host or "")
            if (literal is not None and not self.settings.allow_private
                    and not address_allowed(literal)):
                raise AddressNotAllowed(f"{literal} is not a public address")
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(secret, message_id, timestamp, body),
            }
            async with self._session.post(url, data=body, headers=headers,
                                          allow_redirects=False) as resp:
                status = resp.status
                # The answer is not used: read a little so a small one keeps the connection.
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    await resp.content.read(MAX_RESPONSE)
            if 200 <= status < 300:
                error = None
            elif 300 <= status < 400:
                error = f"HTTP {status}: redirects are not followed"
            else:
                error = f"HTTP {status}"
        except TimeoutError:
            error = f"no answer within {self.settings.timeout:g} s"
        except AddressNotAllowed as exc:
            error = f"refused: {exc}"
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressNotAllowed):
                error = f"refused: {exc.os_error}"
            elif isinstance(exc, aiohttp.ClientConnectorCertificateError):
                error = untrusted(exc.certificate_error)
            elif isinstance(exc, aiohttp.ClientSSLError):
                error = "TLS handshake failed (certificate not valid for the host?)"
            else:
                reason = exc.os_error.strerror or type(exc.os_error).__name__
                error = f"cannot connect: {reason}"
        except aiohttp.ClientError as exc:
            error = f"request failed: {type(exc).__name__}"
        except ValueError:
            error = "the URL is not valid"
        duration = int((time.monotonic() - clock) * 1000)
        return Outcome(started, duration, status, error)

    async def _record(self, row: asyncpg.Record, outcome: Outcome, *,
                      give_up: bool = False) -> None:
        args = (row["id"], row["locked_until"], outcome.started_at, outcome.duration_ms,
                outcome.status_code)
        if outcome.ok:
            await self.pool.execute(_SUCCEEDED, *args)
            return
        gone = outcome.status_code == 410
        settings = self.settings
        delay = backoff(row["attempts"] + 1, settings.retry_backoff, settings.retry_backoff_max)
        result = await self.pool.fetchrow(
            _FAILED, *args, outcome.error, give_up or gone, settings.retry_for_hours * 3600,
            delay, gone, settings.disable_after_hours * 3600, GONE_REASON,
            f"no successful delivery for {settings.disable_after_hours:g} hours",
        )
        if result is not None and result["active"] is False:
            log.warning("webhook %s disabled: %s", row["webhook_id"],
                        GONE_REASON if gone else "failing for too long")
