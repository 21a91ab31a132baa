"""The bus between hub processes: typed events over PostgreSQL's LISTEN/NOTIFY.

Every event travels as a short text payload on one channel, `kind:field:field`. SQL that
notifies inside its own statement (so the wake-up is as transactional as the change) builds
the same payloads; `encode` is the reference for their format. Each process holds ONE
listening connection (`Bus`); the hub and the webhook worker register handlers by event
type instead of parsing strings themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import asyncpg

from smsnodes_hub.db import FAILED

log = logging.getLogger(__name__)

CHANNEL = "smsnodes_hub"
RELISTEN_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Work:
    """The device's queue holds work: whichever process has its socket pushes."""

    kind: ClassVar[str] = "work"
    device_id: int


@dataclass(frozen=True, slots=True)
class PoolWork:
    """The account's pool holds work (routed messages no phone could take, or taken from a
    phone that left): every process holding a phone of the account lets it claim."""

    kind: ClassVar[str] = "pool"
    account_id: int


@dataclass(frozen=True, slots=True)
class Replaced:
    """The device logged in again elsewhere: every other socket of it closes."""

    kind: ClassVar[str] = "replace"
    device_id: int
    connection_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class CredentialsChanged:
    """Password changed or device removed: cached logins and live sockets are void."""

    kind: ClassVar[str] = "credentials"
    device_id: int


@dataclass(frozen=True, slots=True)
class AccountChanged:
    """The account's own password changed, or the account was removed: cached logins of it
    are void (its phones get CredentialsChanged each)."""

    kind: ClassVar[str] = "account"
    account_id: int


@dataclass(frozen=True, slots=True)
class TokenRevoked:
    kind: ClassVar[str] = "token"
    token_id: int


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Tell the phone holding the message that it is cancelled or expired."""

    kind: ClassVar[str] = "cancel"
    device_id: int
    message_id: int


@dataclass(frozen=True, slots=True)
class PaceChanged:
    kind: ClassVar[str] = "pace"
    device_id: int
    per_minute: int | None  # 0 on the wire: no limit


@dataclass(frozen=True, slots=True)
class Disconnect:
    """An operator asked to close the device's socket."""

    kind: ClassVar[str] = "disconnect"
    device_id: int


@dataclass(frozen=True, slots=True)
class WebhookQueued:
    """A webhook delivery was queued (sql/005 `emit_webhook_event`)."""

    kind: ClassVar[str] = "webhook"


@dataclass(frozen=True, slots=True)
class LoginFailed:
    """A login of this well-formed username failed (sql/013 `record_login_failure`): for
    `seconds` its throttle state may refuse a login, so cached logins of it ask first."""

    kind: ClassVar[str] = "login"
    scope: str
    seconds: int
    username: str


Event = (Work | PoolWork | Replaced | CredentialsChanged | AccountChanged | TokenRevoked
         | Withdraw | PaceChanged | Disconnect | WebhookQueued | LoginFailed)
E = TypeVar("E", bound=Event)


def encode(event: Event) -> str:
    match event:
        case Work(device) | CredentialsChanged(device) | Disconnect(device):
            fields: tuple[object, ...] = (device,)
        case Replaced(device, connection):
            fields = (device, connection)
        case TokenRevoked(token):
            fields = (token,)
        case AccountChanged(account) | PoolWork(account):
            fields = (account,)
        case Withdraw(device, message):
            fields = (device, message)
        case PaceChanged(device, per_minute):
            fields = (device, per_minute or 0)
        case WebhookQueued():
            fields = ()
        case LoginFailed(scope, seconds, username):
            fields = (scope, seconds, username)
    return ":".join((event.kind, *map(str, fields)))


def decode(payload: str) -> Event | None:
    """The event a payload names, or None for one this version does not know or that is
    malformed (logged: another process or a hand-typed NOTIFY must not break the listener)."""
    kind, *fields = payload.split(":")
    try:
        match kind, fields:
            case "work", [device]:
                return Work(int(device))
            case "replace", [device, connection]:
                return Replaced(int(device), uuid.UUID(connection))
            case "credentials", [device]:
                return CredentialsChanged(int(device))
            case "token", [token]:
                return TokenRevoked(int(token))
            case "account", [account]:
                return AccountChanged(int(account))
            case "pool", [account]:
                return PoolWork(int(account))
            case "cancel", [device, message]:
                return Withdraw(int(device), int(message))
            case "pace", [device, per_minute]:
                return PaceChanged(int(device), int(per_minute) or None)
            case "disconnect", [device]:
                return Disconnect(int(device))
            case "webhook", []:
                return WebhookQueued()
            case "login", [scope, seconds, username] if username:
                return LoginFailed(scope, int(seconds), username)
    except ValueError:
        pass
    log.warning("ignoring a bus payload this hub does not understand: %.80r", payload)
    return None


async def publish(db: asyncpg.Pool | asyncpg.Connection, event: Event) -> None:
    """NOTIFY every process (this one included), once the caller's transaction commits."""
    await db.execute("SELECT pg_notify($1, $2)", CHANNEL, encode(event))


Handler = Callable[[Any], None]


class Bus:
    """This process's one LISTEN connection and the handlers registered for each event.

    After the connection was (re)opened, the `resync` callbacks run: whatever was announced
    while nobody listened is unknown, so each subscriber asks the database again.
    """

    __slots__ = ("_dsn", "_handlers", "_listener", "_relistening", "_resync", "_stopped")

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._handlers: dict[str, list[Handler]] = {}
        self._resync: list[Callable[[], Awaitable[None]]] = []
        self._listener: asyncpg.Connection | None = None
        self._stopped = False
        self._relistening: asyncio.Task[None] | None = None

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> None:
        self._handlers.setdefault(event_type.kind, []).append(handler)

    def on_resync(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._resync.append(callback)

    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    async def ensure_listening(self) -> None:
        """Open the listening connection if it is not open (the heartbeat calls this)."""
        if self._stopped or self.listening:
            return
        listener = await asyncpg.connect(self._dsn, timeout=5)
        await listener.add_listener(CHANNEL, self._on_notify)
        listener.add_termination_listener(self._on_lost)
        self._listener = listener
        for callback in self._resync:
            try:
                await callback()
            except FAILED as exc:
                log.warning("could not catch up after listening again: %s", exc)

    async def stop(self) -> None:
        self._stopped = True
        if self._relistening is not None:
            self._relistening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relistening
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        event = decode(str(payload))
        if event is None:
            return
        for handler in self._handlers.get(event.kind, ()):
            try:
                handler(event)
            except Exception:
                log.exception("bus handler for %s failed", event.kind)

    def _on_lost(self, _conn: object) -> None:
        if not self._stopped and (self._relistening is None or self._relistening.done()):
            self._relistening = asyncio.create_task(self._relisten(), name="bus-relisten")

    async def _relisten(self) -> None:
        """Listen again at once rather than at the next heartbeat: revocations wait on it."""
        for _ in range(RELISTEN_ATTEMPTS):
            try:
                await self.ensure_listening()
                return
            except FAILED as exc:
                log.warning("could not listen on the bus again: %s", exc)
                await asyncio.sleep(1)
        # Past that the hub's heartbeat keeps trying.
