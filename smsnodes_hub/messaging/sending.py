"""Accepting a message: store it, then push it during the request when the phone is here
and has a free slot. The rules of dispatch live here, not in the HTTP handler.

Two phases, because the push must wait for the commit: `store` writes the message (one
round trip, or inside the caller's transaction), `Stored.push` acts on it afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NoReturn

import asyncpg

from smsnodes_hub.auth.accounts import Executor, Principal
from smsnodes_hub.device.connection import DeviceConnection
from smsnodes_hub.device.hub import Hub
from smsnodes_hub.device.protocol import sms_frame
from smsnodes_hub.device.sessions import PROCESS_STALE
from smsnodes_hub.errors import INVALID_CREDENTIALS, InvalidRequest, Unauthorized
from smsnodes_hub.messaging import messages, quotas
from smsnodes_hub.messaging.segments import analyze


@dataclass(frozen=True, slots=True)
class Outgoing:
    text: str
    numbers: list[str]
    priority: int
    scheduled_at: datetime | None = None
    expires_at: datetime | None = None
    sim: int | None = None  # the SIM slot to send from; None: the phone's default
    # An account's send pinned to its phone of this name (ACCOUNTS.md "Sending").
    device: str | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    message_id: int
    device_online: bool  # pinned: its phone is online; routed: a phone of the account is
    sent_immediately: bool
    scheduled: bool = False
    device: str | None = None  # the phone chosen now; None while no phone can take it
    remaining_quota: int | None = None  # SMS left of the account's quota (None: no quota)


class UnknownDevice(InvalidRequest):
    """An account's send named a phone it does not own (ACCOUNTS.md's 400)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown device {name}")


class CredentialsChanged(Unauthorized):
    """The cached login is stale: the password changed, the device or token is gone."""

    def __init__(self, message: str = INVALID_CREDENTIALS) -> None:
        super().__init__(message)


@dataclass(slots=True)
class Stored:
    """A committed (or about to be committed) message and what to do with it next."""

    message_id: int
    created_at: datetime
    device_online: bool
    outgoing: Outgoing
    principal: Principal
    # The connection whose slot the row was written into, already dispatched to it.
    reserved: DeviceConnection | None = None
    # The phone is here but the message waits in the queue behind others (or for a slot).
    queued_here: DeviceConnection | None = field(default=None)
    device: str | None = None  # the phone's name (None: in the account's pool)
    remaining_quota: int | None = None

    @property
    def expected(self) -> Accepted:
        """The answer as it will be if the push goes as planned (for idempotency replays)."""
        return Accepted(self.message_id, self.device_online, self.reserved is not None,
                        self.outgoing.scheduled_at is not None, self.device,
                        self.remaining_quota)

    async def push(self, hub: Hub, pool: asyncpg.Pool) -> Accepted:
        """Call after the commit: send the frame, or let the connection claim from the queue."""
        conn = self.reserved
        out = self.outgoing
        if conn is not None:
            conn.reserved -= 1
            if conn.open:
                conn.push(self.message_id, 1, sms_frame(
                    self.message_id, 1, out.numbers, out.text, out.priority, self.created_at,
                    out.expires_at, out.sim,
                ))
                return self.expected
            # The socket closed while we wrote: its requeue may have run before our commit.
            await messages.requeue_connection(pool, conn.device_id, conn.id)
            await hub.announce_work(conn.device_id)
            return Accepted(self.message_id, hub.local(conn.device_id) is not None, False,
                            device=self.device, remaining_quota=self.remaining_quota)
        here = self.queued_here
        if here is not None and here.open:
            here.expect_work()
            await here.pump()
            return Accepted(self.message_id, True, here.was_pushed(self.message_id),
                            device=self.device, remaining_quota=self.remaining_quota)
        return self.expected

    def abandon(self) -> None:
        """The transaction did not commit: give back the reserved slot."""
        if self.reserved is not None:
            self.reserved.reserved -= 1
            self.reserved = None


async def store(
    hub: Hub, db: Executor, principal: Principal, out: Outgoing
) -> Stored:
    """Write the message. When the phone is connected here with a free slot and nothing can
    be waiting ahead of it, the row is written already dispatched to that connection, whose
    slot is held meanwhile: one round trip from request to frame."""
    if principal.is_account:
        return await _store_for_account(hub, db, principal, out)
    conn = hub.local(principal.phone_id)
    direct = conn is not None and out.scheduled_at is None and conn.can_push_directly()
    if direct:
        assert conn is not None
        conn.reserved += 1
    try:
        message = messages.new_message(
            principal, priority=out.priority, text=out.text, numbers=out.numbers,
            dispatch_to=conn.id if direct and conn else None,
            # Whenever the phone is not here: another process may hold it, even one that
            # started after our last look at the process table.
            notify=conn is None,
            local_online=conn is not None, stale_seconds=PROCESS_STALE,
            scheduled_at=out.scheduled_at, expires_at=out.expires_at, sim=out.sim,
            segments=analyze(out.text).segments,
        )
        # Alone, the insert shares a commit with the sends that arrive with it; inside the
        # caller's transaction (an idempotency key) it runs there.
        stored = await (hub.lanes.sends.submit(message) if isinstance(db, asyncpg.Pool)
                        else messages.insert(db, message))
    except BaseException:
        if direct and conn is not None:
            conn.reserved -= 1
        raise
    if stored.id is None:
        if direct and conn is not None:
            conn.reserved -= 1
        _refused(stored)
    assert stored.created_at is not None and stored.id is not None
    return Stored(
        stored.id, stored.created_at, stored.device_online, out, principal,
        reserved=conn if direct else None,
        queued_here=conn if not direct and out.scheduled_at is None else None,
        device=principal.username, remaining_quota=stored.remaining_quota,
    )


def _refused(stored: messages.Inserted) -> NoReturn:
    """Why the statement stored nothing: a quota, or credentials changed since cached."""
    if stored.over_quota is not None:
        raise quotas.exceeded(stored.over_quota)
    raise CredentialsChanged


async def _store_for_account(hub: Hub, db: Executor, principal: Principal,
                             out: Outgoing) -> Stored:
    """The account's own send: routed (the statement chooses the phone, storing.py), or
    pinned to its phone `out.device`. Every phone of the account here with a free slot and
    nothing waiting holds one for it meanwhile; the chosen phone's, if it is one of them,
    gets the row already dispatched, the others give theirs back at once."""
    due = out.scheduled_at is None
    if out.device is not None:
        named = hub.local_named(principal.account_id, out.device)
        here = [named] if named is not None else []
    else:
        named = None
        here = hub.phones_of(principal.account_id)
    offered = [c for c in here if due and c.can_push_directly()]
    for c in offered:
        c.reserved += 1
    chosen: DeviceConnection | None = None
    try:
        message = messages.new_message(
            principal, priority=out.priority, text=out.text, numbers=out.numbers,
            dispatch_to=None,
            # Pinned by name: wake its phone's process unless it is this one. Routed: the
            # statement knows where the chosen phone is.
            notify=out.device is not None and named is None,
            local_online=named is not None, stale_seconds=PROCESS_STALE,
            scheduled_at=out.scheduled_at, expires_at=out.expires_at, sim=out.sim,
            segments=analyze(out.text).segments,
            device_name=out.device, offers=tuple((c.device_id, c.id) for c in offered),
            process_id=hub.process_id,
        )
        stored = await (hub.lanes.sends.submit(message) if isinstance(db, asyncpg.Pool)
                        else messages.insert(db, message))
        chosen = next((c for c in offered
                       if stored.dispatched_to is not None and c.id == stored.dispatched_to),
                      None)
    finally:
        for c in offered:
            if c is not chosen:
                c.reserved -= 1
    if stored.unknown_device:
        assert out.device is not None
        raise UnknownDevice(out.device)
    if stored.id is None:
        if chosen is not None:
            chosen.reserved -= 1
        _refused(stored)
    assert stored.created_at is not None and stored.id is not None
    waiting_here = (hub.local(stored.device_id)
                    if chosen is None and due and stored.device_id is not None else None)
    return Stored(stored.id, stored.created_at, stored.device_online, out, principal,
                  reserved=chosen, queued_here=waiting_here, device=stored.device,
                  remaining_quota=stored.remaining_quota)


async def submit(
    hub: Hub, pool: asyncpg.Pool, principal: Principal, out: Outgoing
) -> Accepted:
    """Store and push: the whole path of a send without an idempotency key."""
    stored = await store(hub, pool, principal, out)
    return await stored.push(hub, pool)
