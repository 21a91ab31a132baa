"""Webhooks: registration rules, the safety of targets, Standard Webhooks signatures, event
payloads, and the worker that drains the outbox (`webhook_deliveries`).

The outbox rows are written by the statements that change state (sql/004, `emit_webhook_event`)
and hold references only. A delivery is built at send time: the message text, numbers and
the webhook's signing secret are decrypted with the account's data key, which this process
has only while the account's phone is connected here or its owner authenticated recently
(keyring.py). Deliveries of other accounts wait in the outbox until a key is here."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import ipaddress
import logging
import os
import random
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from . import __version__
from .accounts import Executor, Principal
from .config import WebhookSettings
from .crypto import DecryptionError
from .db import UNAVAILABLE
from .hub import CHANNEL
from .keyring import KeyRing
from .messages import (
    INBOUND_SENDER_PURPOSE,
    INBOUND_TEXT_PURPOSE,
    NUMBER_PURPOSE,
    TEXT_PURPOSE,
)
from .timefmt import iso

log = logging.getLogger(__name__)

EVENTS = (
    "sms.received",
    "message.sent",
    "message.delivered",
    "message.failed",
    "message.expired",
    "message.cancelled",
    "device.online",
    "device.offline",
)
SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SECRET_PURPOSE = "webhook/secret"  # noqa: S105 - an AAD label
SECRET_BYTES = 32
MAX_URL = 2048
MAX_WEBHOOKS = 20  # per account
DELIVERY_STATES = ("pending", "delivered", "failed")
NOTIFY_PAYLOAD = "webhook"  # sql/005: emit_webhook_event's wake-up on CHANNEL

MAX_PAYLOAD = 64 * 1024  # events are small (a text is at most 1600 characters)
MAX_RESPONSE = 4096  # bytes of a receiver's answer read (and thrown away)
POLL = 0.5  # seconds between looks at the outbox when nothing woke the worker
RESOLVE_TIMEOUT = 5.0
LISTEN_RETRY = 5.0
USER_AGENT = f"smsnodes-hub/{__version__} (webhooks)"

# Cloud metadata and host-agent addresses. Most are link-local or private anyway; the ones
# that are not (Azure's wire server) are named here.
_METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookError(Exception):
    """A registration that cannot be accepted; the message is safe to show the caller."""


class TooManyWebhooks(WebhookError):
    pass


class AddressNotAllowed(OSError):
    """A webhook target that is (or resolves only to) a non-public address."""


# -- Registration rules -------------------------------------------------------------------------


def _shown(value: object, limit: int = 40) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_events(raw: object) -> list[str]:
    if raw is None:
        raise WebhookError(f"events is required: a list of event names ({', '.join(EVENTS)})")
    if not isinstance(raw, list):
        raise WebhookError("events must be a list of event names")
    if not raw:
        raise WebhookError("events must name at least one event")
    seen: set[str] = set()
    for item in raw:
        if not isinstance(item, str) or item not in EVENTS:
            raise WebhookError(
                f"events: unknown event {_shown(item)}: use {', '.join(EVENTS)}"
            )
        if item in seen:
            raise WebhookError(f"events: {item} is listed twice")
        seen.add(item)
    return list(raw)


def address_allowed(address: Address) -> bool:
    """Only global unicast addresses: never loopback, private, shared, link-local,
    unique-local, multicast, reserved, unspecified or a cloud metadata service, also when
    wrapped in an IPv6 form (IPv4-mapped, 6to4, NAT64)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded: ipaddress.IPv4Address | None = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not address_allowed(embedded):
            return False
        if address.scope_id:
            return False
    return not (
        address in _METADATA
        or not address.is_global
        or address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


def ip_literal(host: str) -> Address | None:
    """The address of a host written as an IP literal; None for a host name. Uses aiohttp's
    own test (digits and dots, or a colon), since aiohttp skips the resolver for exactly
    these: what looks like a literal but does not parse is refused."""
    if ":" not in host and not host.replace(".", "").isdigit():
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        raise AddressNotAllowed(f"{host[:60]} is not a valid IP address") from None


def parse_url(raw: object, settings: WebhookSettings) -> URL:
    """The URL's shape: https (or http when allowed), a host, no credentials."""
    if not isinstance(raw, str) or not raw.strip():
        raise WebhookError("url is required: the https:// address of your receiver")
    if len(raw) > MAX_URL:
        raise WebhookError(f"url must be at most {MAX_URL} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        raise WebhookError("url must not contain spaces or control characters")
    try:
        url = URL(raw)
        host = url.host
    except (ValueError, TypeError):
        raise WebhookError("url is not a valid URL") from None
    if url.scheme not in ("https", "http"):
        raise WebhookError("url must start with https://")
    if url.scheme == "http" and not settings.allow_http:
        raise WebhookError("url must use https:// (http:// needs webhooks.allow_http)")
    if not host:
        raise WebhookError("url must name a host")
    if url.user is not None or url.password is not None:
        raise WebhookError(
            "url must not contain a user name or password: verify the signature instead"
        )
    return url


async def check_url(raw: object, settings: WebhookSettings) -> str:
    """Refuse a URL that is malformed or whose host is not public (an IP literal, or a name
    any of whose addresses is not public). Returns the URL as given."""
    url = parse_url(raw, settings)
    assert isinstance(raw, str) and url.host is not None
    if settings.allow_private:
        return raw
    host = url.host
    refusal = ("url must point to a public address: {} is loopback, private, link-local "
               "or otherwise internal (needs webhooks.allow_private)")
    try:
        literal = ip_literal(host)
    except AddressNotAllowed as exc:
        raise WebhookError(f"url: {exc}") from None
    if literal is not None:
        if not address_allowed(literal):
            raise WebhookError(refusal.format(host))
        return raw
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, url.port or 443, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT
        )
    except (OSError, TimeoutError, UnicodeError):
        raise WebhookError(f"url: the host {host[:100]} does not resolve") from None
    addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    for address in sorted(addresses, key=str):
        if not address_allowed(address):
            raise WebhookError(refusal.format(f"{host[:100]} ({address})"))
    if not addresses:
        raise WebhookError(f"url: the host {host[:100]} does not resolve")
    return raw


# -- Secrets and signatures (Standard Webhooks) ----------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode("ascii")


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the secret's
    base64-decoded part after `whsec_`."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def backoff(attempts: int, base: float, ceiling: float) -> float:
    """Seconds after failed attempt number `attempts`: doubling from `base`, capped, less up
    to a quarter at random so that many failures at once (a receiver down for everyone) do
    not all come back together."""
    delay = min(ceiling, base * 2 ** min(max(0, attempts - 1), 32))
    return delay * random.uniform(0.75, 1.0)


def event_id(value: Any) -> str:
    return f"evt_{value.hex}"


# -- Storage -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    url: str
    events: list[str]
    active: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime
    last_success_at: datetime | None
    failing_since: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Webhook:
        return cls(row["id"], row["url"], list(row["events"]), row["active"],
                   row["disabled_reason"], row["created_at"], row["updated_at"],
                   row["last_success_at"], row["failing_since"])


_COLUMNS = ("id, url, events, active, disabled_reason, created_at, updated_at, "
            "last_success_at, failing_since")


async def create(db: Executor, principal: Principal, url: str,
                 events: list[str]) -> tuple[Webhook, str]:
    """Store a webhook with a new signing secret, sealed with the account's data key.
    Returns it with the secret, which is never shown again."""
    secret = new_secret()
    sealed = principal.seal(secret, SECRET_PURPOSE)
    async with _connection(db) as conn, conn.transaction():
        # The account's row lock serialises creations, so the cap holds under races.
        if await conn.fetchval("SELECT id FROM accounts WHERE id = $1 FOR UPDATE",
                               principal.account_id) is None:
            raise WebhookError("the account no longer exists")
        count = await conn.fetchval("SELECT count(*) FROM webhooks WHERE account_id = $1",
                                    principal.account_id)
        if count >= MAX_WEBHOOKS:
            raise TooManyWebhooks(
                f"an account has at most {MAX_WEBHOOKS} webhooks: delete one first"
            )
        row = await conn.fetchrow(
            f"INSERT INTO webhooks (account_id, url, events, secret) "  # noqa: S608
            f"VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}",
            principal.account_id, url, events, sealed,
        )
    assert row is not None
    return Webhook.from_row(row), secret


@contextlib.asynccontextmanager
async def _connection(db: Executor) -> Any:
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


async def list_webhooks(db: Executor, account_id: int) -> list[Webhook]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM webhooks WHERE account_id = $1 ORDER BY id",  # noqa: S608
        account_id,
    )
    return [Webhook.from_row(r) for r in rows]


async def get_webhook(db: Executor, account_id: int, webhook_id: int) -> Webhook | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM webhooks WHERE id = $1 AND account_id = $2",  # noqa: S608
        webhook_id, account_id,
    )
    return None if row is None else Webhook.from_row(row)


_UPDATE = """
WITH old AS (
    SELECT id, active FROM webhooks WHERE id = $1 AND account_id = $2 FOR UPDATE
), upd AS (
    UPDATE webhooks w SET
        url = coalesce($3, w.url),
        events = coalesce($4, w.events),
        active = coalesce($5, w.active),
        disabled_reason = CASE WHEN $5 IS TRUE THEN NULL
                               WHEN $5 IS FALSE AND w.active THEN 'disabled by its owner'
                               ELSE w.disabled_reason END,
        -- Re-activated, or pointed elsewhere: the failure clock starts again.
        failing_since = CASE WHEN ($5 IS TRUE AND NOT w.active) OR $3 <> w.url THEN NULL
                             ELSE w.failing_since END,
        updated_at = now()
      FROM old WHERE w.id = old.id
    RETURNING w.id, w.url, w.events, w.active, w.disabled_reason, w.created_at, w.updated_at,
              w.last_success_at, w.failing_since
), resume AS (
    -- Back from disabled: what waited is tried at once.
    UPDATE webhook_deliveries d SET next_attempt_at = now()
      FROM old
     WHERE d.webhook_id = old.id AND NOT old.active AND $5 IS TRUE
       AND d.state = 'pending' AND d.next_attempt_at > now()
)
SELECT * FROM upd
"""


async def update_webhook(
    db: Executor, account_id: int, webhook_id: int, *, url: str | None = None,
    events: list[str] | None = None, active: bool | None = None,
) -> Webhook | None:
    """Change what is given; `active=True` re-activates (clearing the reason and the
    failure clock, as a new URL also does). None when the account has no such webhook."""
    row = await db.fetchrow(_UPDATE, webhook_id, account_id, url, events, active)
    return None if row is None else Webhook.from_row(row)


async def delete_webhook(db: Executor, account_id: int, webhook_id: int) -> bool:
    """Delete the webhook with its outbox rows and their attempts."""
    return await db.fetchval(
        "DELETE FROM webhooks WHERE id = $1 AND account_id = $2 RETURNING id",
        webhook_id, account_id,
    ) is not None


async def list_deliveries(
    db: Executor, account_id: int, webhook_id: int, state: str | None, limit: int,
    offset: int,
) -> tuple[int, list[asyncpg.Record]] | None:
    """A page of the webhook's deliveries (newest first) with their attempts, and the
    total; None when the account has no such webhook."""
    if await get_webhook(db, account_id, webhook_id) is None:
        return None
    where = "d.webhook_id = $1 AND d.account_id = $2 AND ($3::text IS NULL OR d.state = $3)"
    total = await db.fetchval(
        f"SELECT count(*) FROM webhook_deliveries d WHERE {where}",  # noqa: S608
        webhook_id, account_id, state,
    )
    rows = await db.fetch(
        f"""SELECT d.id, d.event_id, d.event_type, d.state, d.created_at, d.next_attempt_at,
                   d.delivered_at,
                   ARRAY(SELECT row(a.attempt, a.started_at, a.duration_ms, a.status_code,
                                    a.error, a.next_retry_at)
                           FROM webhook_attempts a WHERE a.delivery_id = d.id
                          ORDER BY a.id) AS attempts
              FROM webhook_deliveries d WHERE {where}
             ORDER BY d.id DESC LIMIT $4 OFFSET $5""",  # noqa: S608
        webhook_id, account_id, state, limit, offset,
    )
    return int(total), rows


# -- Payloads ------------------------------------------------------------------------------------


def _open(principal: Principal, blob: bytes | None, purpose: str) -> str | None:
    if blob is None:
        return None
    try:
        return principal.open(blob, purpose)
    except DecryptionError:
        log.warning("a stored ciphertext of account %s does not open", principal.account_id)
        return None


def build_event(principal: Principal, row: asyncpg.Record) -> dict[str, Any]:
    """The event as the receiver gets it: numbers and texts decrypted for their owner."""
    kind = row["event_type"]
    device = {"deviceId": row["device_id"], "username": row["username"]}
    data: dict[str, Any]
    if kind.startswith("message."):
        data = {
            "messageId": row["message_id"],
            "to": _open(principal, row["recipient_number"], NUMBER_PURPOSE),
            "status": row["status"],
            "error": row["error"],
            "attempt": row["attempt"],
            "message": _open(principal, row["message_body"], TEXT_PURPOSE),
            **device,
        }
    elif kind == "sms.received":
        data = {
            "inboundId": row["inbound_id"],
            "from": _open(principal, row["inbound_sender"], INBOUND_SENDER_PURPOSE),
            "message": _open(principal, row["inbound_body"], INBOUND_TEXT_PURPOSE),
            "receivedAt": iso(row["received_at"]),
            **device,
        }
    else:
        data = device
    return {"id": event_id(row["event_id"]), "type": kind, "createdAt": iso(row["created_at"]),
            "data": data}


# -- Delivery ------------------------------------------------------------------------------------

# Claims due deliveries of the accounts whose keys are here: row locks (SKIP LOCKED) keep
# two processes off the same row while claiming, the lease keeps them off it while the
# request runs. Everything needed to build the payload comes back in the same round trip.
_CLAIM = """
WITH due AS (
    SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
     WHERE d.state = 'pending' AND d.next_attempt_at <= now()
       AND (d.locked_until IS NULL OR d.locked_until < now())
       AND d.account_id = ANY($1::bigint[]) AND w.active
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
       c.first_attempt_at, w.url, w.secret, dev.username, m.body AS message_body,
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


class PublicResolver(AbstractResolver):
    """aiohttp's resolver, minus every address that is not public: a host name that
    resolves (or is rebound after registration) to an internal address fails to connect.
    aiohttp does not call resolvers for IP literals; the worker checks those itself."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        kept = [r for r in results
                if address_allowed(ipaddress.ip_address(r["host"].split("%")[0]))]
        if not kept:
            raise AddressNotAllowed(f"{host[:100]} has no public address")
        return kept

    async def close(self) -> None:
        await self._inner.close()


class DeliveryWorker:
    """Claims due deliveries of the accounts whose keys this process holds, POSTs them
    signed, and records each attempt. Several processes may run one each."""

    __slots__ = (
        "_claims",
        "_dsn",
        "_listen_after",
        "_listener",
        "_session",
        "_stopped",
        "_task",
        "_wake",
        "keyring",
        "pool",
        "settings",
    )

    def __init__(self, settings: WebhookSettings, pool: asyncpg.Pool, keyring: KeyRing,
                 dsn: str) -> None:
        self.settings = settings
        self.pool = pool
        self.keyring = keyring
        self._dsn = dsn
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._listen_after = 0.0
        self._stopped = False
        # Deliveries in flight: their task, with the (id, lease) that fences them.
        self._claims: dict[asyncio.Task[None], tuple[int, datetime]] = {}

    @property
    def lease_seconds(self) -> float:
        # Longer than a request can take (the timeout bounds it) plus the time to record it.
        return self.settings.timeout * 2 + 30

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(resolver=PublicResolver(),
                                         limit=self.settings.concurrency)
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
            with contextlib.suppress(*UNAVAILABLE, asyncpg.PostgresError):
                await self.pool.execute(_RELEASE, list(ids), list(leases))
            self._claims.clear()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
        if self._session is not None:
            await self._session.close()

    def wake(self) -> None:
        self._wake.set()

    # -- The loop -------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            full = False
            try:
                await self._listen()
                full = await self._claim()
            except asyncio.CancelledError:
                raise
            except UNAVAILABLE as exc:
                log.warning("database unavailable for webhook deliveries: %s", exc)
            except Exception:
                log.exception("webhook deliveries: claiming failed")
            if full:
                continue  # more may be due: claim again as soon as a slot frees
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL)

    async def _listen(self) -> None:
        """A LISTEN connection wakes the worker when any process commits an event."""
        if self._listener is not None and not self._listener.is_closed():
            return
        if time.monotonic() < self._listen_after:
            return
        self._listen_after = time.monotonic() + LISTEN_RETRY
        try:
            conn = await asyncpg.connect(self._dsn, timeout=5)
            await conn.add_listener(CHANNEL, self._on_notify)
        except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
            log.warning("webhook deliveries: cannot listen for events: %s", exc)
            return
        self._listener = conn
        self._wake.set()  # anything emitted while we were not listening

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == NOTIFY_PAYLOAD:
            self._wake.set()

    async def _claim(self) -> bool:
        """Claim into the free slots; True when every slot is now taken."""
        free = self.settings.concurrency - len(self._claims)
        if free <= 0:
            return False  # a finishing delivery wakes the loop
        accounts = self.keyring.accounts()
        if not accounts:
            return False
        rows = await self.pool.fetch(_CLAIM, accounts, free, self.lease_seconds)
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
            principal = self.keyring.get(row["account_id"])
            if principal is None:  # the key left memory since the claim: wait for it
                await self.pool.execute(_RELEASE, [row["id"]], [lease])
                return
            try:
                secret = principal.open(row["secret"], SECRET_PURPOSE)
            except DecryptionError:
                log.warning("webhook %s: its stored signing secret does not open",
                            row["webhook_id"])
                await self._record(row, Outcome(datetime.now(UTC), 0, None,
                                                "the signing secret does not open"),
                                   give_up=True)
                return
            body = orjson.dumps(build_event(principal, row))
            if len(body) > MAX_PAYLOAD:
                await self._record(row, Outcome(datetime.now(UTC), 0, None,
                                                "payload too large"), give_up=True)
                return
            outcome = await self._post(row["url"], event_id(row["event_id"]), secret, body)
            await self._record(row, outcome)
        except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
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


def describe_attempts(records: Iterable[Any]) -> list[dict[str, Any]]:
    """The attempts of one delivery, as the deliveries API shows them."""
    return [
        {"attempt": attempt, "at": iso(started), "durationMs": duration,
         "statusCode": status, "error": error, "nextRetryAt": iso(next_retry)}
        for attempt, started, duration, status, error, next_retry in records
    ]
