"""Group commit (smsnodes_hub/batching.py) against a real PostgreSQL: callers share commits,
a bad row fails alone, a lost connection fails its whole batch, close() flushes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from smsnodes_hub.batching import GroupCommit, LaneClosed


@pytest.fixture
async def table(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    await pool.execute("CREATE TABLE gc (id int PRIMARY KEY, v int CHECK (v >= 0))")
    yield pool


async def insert(conn: asyncpg.Connection, item: tuple[int, int]) -> int:
    return await conn.fetchval("INSERT INTO gc VALUES ($1, $2) RETURNING id", *item)


async def committed(pool: asyncpg.Pool) -> list[int]:
    return [r["id"] for r in await pool.fetch("SELECT id FROM gc ORDER BY id")]


async def test_concurrent_writes_share_commits_and_each_is_committed_on_return(table):
    lane: GroupCommit[tuple[int, int], int] = GroupCommit(table, insert, name="t")
    seen_committed: list[bool] = []

    async def one(i: int) -> None:
        assert await lane.submit((i, i)) == i
        # Visible to another connection the moment submit returns: it was committed.
        seen_committed.append(bool(await table.fetchval("SELECT 1 FROM gc WHERE id = $1", i)))

    await asyncio.gather(*(one(i) for i in range(40)))
    assert all(seen_committed) and len(seen_committed) == 40
    assert await committed(table) == list(range(40))
    assert lane.stats.writes == 40
    assert lane.stats.batches < 40  # shared: fewer commits than writes
    assert lane.stats.largest > 1


async def test_a_lone_write_runs_at_once_in_a_batch_of_its_own(table):
    lane: GroupCommit[tuple[int, int], int] = GroupCommit(table, insert, name="t")
    assert await lane.submit((1, 1)) == 1
    assert (lane.stats.batches, lane.stats.largest) == (1, 1)


async def test_a_bad_row_fails_only_its_caller(table):
    lane: GroupCommit[tuple[int, int], int] = GroupCommit(table, insert, name="t")
    items = [(1, 1), (2, -5), (3, 3), (1, 9), (4, 4)]  # a CHECK violation, a duplicate key
    results = await asyncio.gather(*(lane.submit(i) for i in items), return_exceptions=True)
    assert results[0] == 1 and results[2] == 3 and results[4] == 4
    assert isinstance(results[1], asyncpg.CheckViolationError)
    assert isinstance(results[3], asyncpg.UniqueViolationError)
    assert await committed(table) == [1, 3, 4]


async def test_a_connection_lost_mid_batch_answers_every_caller_and_commits_nothing(table):
    async def step(conn: asyncpg.Connection, item: tuple[int, int]) -> int:
        if item[0] == 3:
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return await insert(conn, item)

    lane: GroupCommit[tuple[int, int], int] = GroupCommit(table, step, name="t")
    results = await asyncio.gather(*(lane.submit((i, i)) for i in range(1, 6)),
                                   return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results), results
    assert await committed(table) == []
    assert await lane.submit((7, 7)) == 7  # the lane goes on with a new connection


async def test_a_failed_commit_fails_the_whole_batch(table):
    await table.execute("ALTER TABLE gc ADD CONSTRAINT gc_v UNIQUE (v) DEFERRABLE "
                        "INITIALLY DEFERRED")
    lane: GroupCommit[tuple[int, int], int] = GroupCommit(table, insert, name="t")
    gate = asyncio.Event()

    async def slow(conn: asyncpg.Connection, item: tuple[int, int]) -> int:
        await gate.wait()
        return await insert(conn, item)

    blocker: GroupCommit[tuple[int, int], int] = GroupCommit(table, slow, name="t")
    # Hold the lane's first batch open so the next two writes queue and share a batch.
    first = asyncio.ensure_future(lane.submit((1, 100)))
    await asyncio.sleep(0)
    pair = [asyncio.ensure_future(lane.submit((2, 7))), asyncio.ensure_future(lane.submit((3, 7)))]
    gate.set()
    await first
    results = await asyncio.gather(*pair, return_exceptions=True)
    assert all(isinstance(r, asyncpg.UniqueViolationError) for r in results), results
    assert await committed(table) == [1]
    await blocker.close()


async def test_close_flushes_what_is_queued_and_refuses_more(table):
    lane: GroupCommit[tuple[int, int], int] = GroupCommit(table, insert, name="t", max_batch=4)
    futures = [asyncio.ensure_future(lane.submit((i, i))) for i in range(20)]
    await asyncio.sleep(0)  # all queued
    await lane.close()
    assert all(f.done() and f.result() == i for i, f in enumerate(futures))
    assert await committed(table) == list(range(20))
    with pytest.raises(LaneClosed):
        await lane.submit((99, 99))


async def test_a_caller_that_gives_up_still_gets_its_write_committed(table):
    lane: GroupCommit[tuple[int, int], int] = GroupCommit(table, insert, name="t")
    task = asyncio.ensure_future(lane.submit((5, 5)))
    await asyncio.sleep(0)
    task.cancel()
    await lane.close()
    assert await committed(table) == [5]
