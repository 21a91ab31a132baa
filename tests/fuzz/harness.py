"""What the fuzzers share: the hub under fuzz with its two accounts, a change detector over
every table, and the trap for log records with a traceback. (The raw HTTP client, which
sends any bytes in the request line, headers and body, is raw_request in tests/support.py.)"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import asyncpg
from aiohttp.test_utils import TestClient
from hypothesis import settings

from smsnodes_hub import errors
from tests.api.test_errors import snapshot
from tests.support import Reply, Seeded, raw_request, until

CODES = {cls.code: cls.status for cls in errors.ANSWERS}
# Written by the hub whatever the requests (heartbeats, presence) or, by design, by a
# refused request (a wrong password is counted: tests/auth/test_throttle.py).
UNWATCHED = ("hub_processes", "login_failures", "device_sessions")
# Columns a refused request may touch, or the hub's clock: a token's or a phone's "last
# used" time is written by the login, before the request itself is judged; a phone gone
# for the grace period is announced offline on a timer.
VOLATILE = {"tokens": ("last_used_at",), "devices": ("last_seen_at", "announced_online")}
REQUEST_TIMEOUT = 30.0
# Each fuzz test's share of a run: its examples are the profile's max_examples times this
# (scripts/fuzz divides the total asked for by their sum).
WEIGHTS = {
    "test_bodies": 1.5, "test_queries_and_ids": 1.0, "test_headers": 0.7,
    "test_first_frames": 1.0, "test_frames_after_auth": 2.0,
}


def examples(test: str) -> settings:
    """The number of examples for `test` (a name in WEIGHTS) under the loaded profile."""
    return settings(max_examples=max(10, round(settings().max_examples * WEIGHTS[test])))


class LogTrap(logging.Handler):
    """Keeps every record at ERROR or above, and every record with a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)

    def clear(self) -> None:
        self.records.clear()

    def take(self) -> list[str]:
        found = [f"{r.name} {r.levelname}: {r.getMessage()}"
                 + (f"\n{logging.Formatter().formatException(r.exc_info)}" if r.exc_info else "")
                 for r in self.records]
        self.clear()
        return found


def error_code(reply: Reply) -> str:
    """The `code` of a documented error answer; fails on anything else."""
    assert reply.headers.get("content-type", "").startswith("application/json"), reply
    body = reply.json()
    assert isinstance(body, dict) and set(body) == {"error", "code"}, body
    assert isinstance(body["error"], str) and body["error"], body
    assert CODES.get(body["code"]) == reply.status, (reply.status, body)
    return body["code"]


class FuzzHub:
    """The hub under fuzz (a plain class: Hypothesis prints a failing example's arguments,
    and this one's repr stays one line)."""

    def __init__(self, client: TestClient, pool: asyncpg.Pool, mine: Seeded, theirs: Seeded,
                 trap: LogTrap, outcomes: Counter[str]) -> None:
        self.client, self.pool, self.mine, self.theirs = client, pool, mine, theirs
        self.trap, self.outcomes = trap, outcomes
        self.marks_query = ""
        self.host = "127.0.0.1"
        self.port = 0
        self.counter = 0

    @classmethod
    async def open(cls, client: TestClient, dsn: str, mine: Seeded, theirs: Seeded,
                   trap: LogTrap, outcomes: Counter[str]) -> FuzzHub:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        assert pool is not None
        hub = cls(client, pool, mine, theirs, trap, outcomes)
        hub.marks_query = await marks_query(pool)
        assert client.server.port is not None
        hub.port = client.server.port
        return hub

    async def close(self) -> None:
        await self.pool.close()

    def __repr__(self) -> str:  # Hypothesis prints the arguments of a failing example
        return f"FuzzHub({self.host}:{self.port})"

    def next_ref(self) -> str:
        """A ref no earlier frame had, always as long (Hypothesis must draw the same way
        when it replays an example)."""
        self.counter += 1
        return f"fz-{self.counter:012d}"

    async def marks(self) -> dict[str, str]:
        """A mark per table that changes with any row written (inserted, updated, deleted)."""
        row = await self.pool.fetchrow(self.marks_query)
        assert row is not None
        return dict(row)

    async def unchanged_since(self, before: dict[str, str], what: str) -> None:
        after = await self.marks()
        if after != before:
            changed = sorted(t for t in after if after[t] != before[t])
            rows = await snapshot(self.pool)
            shown = {t: rows.get(t, [])[-3:] for t in changed}
            raise AssertionError(f"{what} was refused but changed {changed}: last rows {shown}")

    async def hung_up(self, device_id: int) -> None:
        """Wait until the hub has let go of the device's socket (its session row is gone,
        its in-flight messages are back in the queue): that is written after the close."""
        await until(lambda: self._no_session(device_id), message="the session stayed")

    async def _no_session(self, device_id: int) -> bool:
        return not await self.pool.fetchval(
            "SELECT count(*) FROM device_sessions WHERE device_id = $1", device_id)

    def no_tracebacks(self, what: str) -> None:
        found = self.trap.take()
        assert not found, f"{what}: logged\n" + "\n".join(found)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] += 1

    async def request(self, head: bytes, body: bytes) -> Reply | None:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            return await raw_request(self.host, self.port, head, body)


async def marks_query(pool: asyncpg.Pool) -> str:
    """One statement over every watched table: its row count and the newest row version
    (xmin), or for a table with volatile columns a digest of the rest."""
    tables = [r[0] for r in await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
    parts = []
    for table in tables:
        if table in UNWATCHED:
            continue
        # The names come from pg_tables, not from any input.
        if table in VOLATILE:
            row = "(to_jsonb(t) - " + " - ".join(f"'{c}'" for c in VOLATILE[table]) + ")::text"
            expr = f"(SELECT md5(coalesce(string_agg({row}, ',' ORDER BY {row}), ''))"
            expr += f" FROM {table} t)"
        else:
            expr = "(SELECT count(*)::text || ':' || coalesce(max(xmin::text::bigint), 0)"
            expr += f" FROM {table})"
        parts.append(f'{expr} AS "{table}"')
    return "SELECT " + ", ".join(parts)
