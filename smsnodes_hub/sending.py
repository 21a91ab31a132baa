"""Accepting a message: store it, and push it during the request when the phone is here
and has a free slot. The rules of dispatch live here, not in the HTTP handler."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from . import messages
from .accounts import Principal
from .connection import sms_frame
from .hub import PROCESS_STALE, Hub


@dataclass(frozen=True, slots=True)
class Accepted:
    message_id: int
    device_online: bool
    sent_immediately: bool


class CredentialsChanged(Exception):
    """The cached login is stale: the password changed or the device was removed."""


async def submit(
    hub: Hub,
    pool: asyncpg.Pool,
    principal: Principal,
    *,
    text: str,
    numbers: list[str],
    priority: int,
) -> Accepted:
    conn = hub.local(principal.device_id)
    if conn is not None and conn.can_push_directly():
        # One round trip: the row is written already dispatched to this connection, whose
        # slot we hold meanwhile, and the frame goes out as soon as it is committed.
        conn.reserved += 1
        try:
            stored = await messages.insert(
                pool, principal, priority=priority, text=text, numbers=numbers,
                dispatch_to=conn.id, notify=False, local_online=True,
                stale_seconds=PROCESS_STALE,
            )
        finally:
            conn.reserved -= 1
        if stored.id is None:
            raise CredentialsChanged
        if conn.open:
            assert stored.created_at is not None
            conn.push(stored.id, 1, sms_frame(
                stored.id, 1, numbers, text, priority, stored.created_at, None
            ))
            return Accepted(stored.id, True, True)
        # The socket closed while we wrote: its requeue may have run before our commit.
        await messages.requeue_connection(pool, principal.device_id, conn.id)
        await hub.announce_work(principal.device_id)
        return Accepted(stored.id, hub.local(principal.device_id) is not None, False)

    stored = await messages.insert(
        pool, principal, priority=priority, text=text, numbers=numbers, dispatch_to=None,
        notify=conn is None and hub.other_processes > 0, local_online=conn is not None,
        stale_seconds=PROCESS_STALE,
    )
    if stored.id is None:
        raise CredentialsChanged
    if conn is None:
        return Accepted(stored.id, stored.device_online, False)
    conn.expect_work()
    await conn.pump()
    return Accepted(stored.id, True, conn.was_pushed(stored.id))
