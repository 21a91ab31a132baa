"""Helpers for tests of accounts with several phones: an account with its phones and an
account token, routed sends, and real phones on real sockets that ack (or hold) what they
are given."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from smsnodes_hub.messaging import quotas
from tests.support import NUMBER, PASSWORD, add_account, add_phone, basic, ws_url
from tests.wsclient import RawPhone


@dataclass
class Account:
    name: str
    phones: list[str]
    token: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def account_with_phones(hub: TestClient, count: int, name: str = "acme") -> Account:
    """The account `name` with phones `name-1`...`name-count` and an account token."""
    await add_account(hub, name)
    phones = [f"{name}-{k}" for k in range(1, count + 1)]
    for phone in phones:
        await add_phone(hub, name, phone)
    resp = await hub.post("/api/tokens", headers=basic(name), json={"name": "routing"})
    body = await resp.json()
    assert resp.status == 201 and body["device"] is None, body
    return Account(name, phones, body["token"])


async def credential_rows(pool: asyncpg.Pool) -> list[tuple[object, ...]]:
    """Every account's and phone's credential, with its tokens and messages: what a refused
    password command must leave exactly as it was."""
    rows = await pool.fetch(
        """SELECT 'account' AS kind, a.name, a.verifier, a.wrapped_key, a.credential_epoch,
                  (SELECT count(*) FROM tokens t WHERE t.account_id = a.id
                      AND t.device_id IS NULL) AS tokens,
                  (SELECT count(*) FROM messages m WHERE m.account_id = a.id) AS messages
             FROM accounts a
           UNION ALL
           SELECT 'phone', d.username, d.verifier, d.wrapped_key, d.credential_epoch,
                  (SELECT count(*) FROM tokens t WHERE t.device_id = d.id),
                  (SELECT count(*) FROM messages m WHERE m.device_id = d.id)
             FROM devices d
            ORDER BY 1, 2""")
    return [tuple(r) for r in rows]


async def set_quota(pool: asyncpg.Pool, name: str, daily: int | None,
                    monthly: int | None = None) -> None:
    """The account `name`'s quota of SMS a day and a month (None: no limit)."""
    account_id = await pool.fetchval("SELECT id FROM accounts WHERE name = $1", name)
    await quotas.set_limits(pool, account_id, daily, monthly)


async def send_routed(hub: TestClient, account: Account, status: int = 200,
                      **fields: Any) -> Any:
    """A send authenticated as the account (routed unless `device` is given)."""
    body = {"phoneNumbers": [NUMBER], "message": "routed", **fields}
    resp = await hub.post("/api/send-sms", headers=account.bearer, json=body)
    answer = await resp.json()
    assert resp.status == status, answer
    return answer


@dataclass
class Phone:
    """A real phone on a real socket: records every `sms` and `cancel` frame, and acks each
    `sms` at once unless `acking` is off (then it holds them un-acked)."""

    name: str
    raw: RawPhone
    acking: bool = True
    received: list[dict[str, Any]] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @classmethod
    async def login(cls, hub: TestClient, name: str, *, acking: bool = True) -> Phone:
        phone = cls(name, await RawPhone.login(ws_url(hub), name, PASSWORD), acking)
        phone.task = asyncio.create_task(phone._read())
        return phone

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                frame = await self.raw.recv(timeout=3600)
                if frame["type"] == "sms":
                    self.received.append(frame)
                    if self.acking:
                        await self.raw.ack(frame)
                elif frame["type"] == "cancel":
                    self.cancelled.append(frame["id"])

    @property
    def ids(self) -> list[int]:
        return [f["id"] for f in self.received]

    async def report(self, message_id: int, status: str, **extra: Any) -> None:
        await self.raw.send({"type": "status", "id": message_id, "to": NUMBER,
                             "status": status, **extra})

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        with contextlib.suppress(Exception):
            await self.raw.close()

    async def drop(self) -> None:
        """The connection ends without a goodbye (the phone's network is gone)."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.raw.session.close()
