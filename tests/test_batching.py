"""Group commit (smsnodes_hub/batching.py) against a real PostgreSQL: callers share commits,
a bad row fails alone, a lost connection fails its whole batch, close() flushes; set-based
lanes run a batch as one statement."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest

from smsnodes_hub.batching import GroupCommit, LaneClosed, SetCommit, Sharded, Statement, Write


@pytest.fixture
async def table(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    await pool.execute("CREATE TABLE gc (id int PRIMARY KEY, v int CHECK (v >= 0))")
    yield pool


def insert(key: int, value: int) -> Write[int]:
    async def write(conn: asyncpg.Connection) -> int:
        return await conn.fetchval("INSERT INTO gc VALUES ($1, $2) RETURNING id", key, value)

    return write


async def committed(pool: asyncpg.Pool) -> list[int]:
    return [r["id"] for r in await pool.fetch("SELECT id FROM gc ORDER BY id")]


async def test_concurrent_writes_share_commits_and_each_is_committed_on_return(table):
    lane: GroupCommit[int] = GroupCommit(table, name="t")
    seen_committed: list[bool] = []

    async def one(i: int) -> None:
        assert await lane.submit(insert(i, i)) == i
        # Visible to another connection the moment submit returns: it was committed.
        seen_committed.append(bool(await table.fetchval("SELECT 1 FROM gc WHERE id = $1", i)))

    await asyncio.gather(*(one(i) for i in range(40)))
    assert all(seen_committed) and len(seen_committed) == 40
    assert await committed(table) == list(range(40))
    assert lane.stats.writes == 40
    assert lane.stats.batches < 40  # shared: fewer commits than writes
    assert lane.stats.largest > 1


async def test_a_lone_write_runs_at_once_in_a_batch_of_its_own(table):
    lane: GroupCommit[int] = GroupCommit(table, name="t")
    assert await lane.submit(insert(1, 1)) == 1
    assert (lane.stats.batches, lane.stats.largest) == (1, 1)


async def test_a_bad_row_fails_only_its_caller(table):
    lane: GroupCommit[int] = GroupCommit(table, name="t")
    items = [(1, 1), (2, -5), (3, 3), (1, 9), (4, 4)]  # a CHECK violation, a duplicate key
    results = await asyncio.gather(*(lane.submit(insert(*i)) for i in items),
                                   return_exceptions=True)
    assert results[0] == 1 and results[2] == 3 and results[4] == 4
    assert isinstance(results[1], asyncpg.CheckViolationError)
    assert isinstance(results[3], asyncpg.UniqueViolationError)
    assert await committed(table) == [1, 3, 4]


async def test_a_connection_lost_mid_batch_answers_every_caller_and_commits_nothing(table):
    def write(i: int) -> Write[int]:
        async def run(conn: asyncpg.Connection) -> int:
            if i == 3:
                await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            return await insert(i, i)(conn)

        return run

    lane: GroupCommit[int] = GroupCommit(table, name="t")
    results = await asyncio.gather(*(lane.submit(write(i)) for i in range(1, 6)),
                                   return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results), results
    assert await committed(table) == []
    assert await lane.submit(insert(7, 7)) == 7  # the lane goes on with a new connection


async def test_a_failed_commit_fails_the_whole_batch(table):
    await table.execute("ALTER TABLE gc ADD CONSTRAINT gc_v UNIQUE (v) DEFERRABLE "
                        "INITIALLY DEFERRED")
    lane: GroupCommit[int] = GroupCommit(table, name="t")
    gate = asyncio.Event()

    def held(key: int, value: int) -> Write[int]:
        async def run(conn: asyncpg.Connection) -> int:
            await gate.wait()
            return await insert(key, value)(conn)

        return run

    # The first batch is held open, so the next two writes queue and share the next one,
    # whose COMMIT fails on the deferred constraint.
    first = asyncio.ensure_future(lane.submit(held(1, 100)))
    await asyncio.sleep(0.05)
    pair = [asyncio.ensure_future(lane.submit(insert(2, 7))),
            asyncio.ensure_future(lane.submit(insert(3, 7)))]
    await asyncio.sleep(0)
    gate.set()
    assert await first == 1
    results = await asyncio.gather(*pair, return_exceptions=True)
    assert all(isinstance(r, asyncpg.UniqueViolationError) for r in results), results
    assert await committed(table) == [1]


async def test_close_flushes_what_is_queued_and_refuses_more(table):
    lane: GroupCommit[int] = GroupCommit(table, name="t", max_batch=4)
    futures = [asyncio.ensure_future(lane.submit(insert(i, i))) for i in range(20)]
    await asyncio.sleep(0)  # all queued
    await lane.close()
    assert all(f.done() and f.result() == i for i, f in enumerate(futures))
    assert await committed(table) == list(range(20))
    with pytest.raises(LaneClosed):
        await lane.submit(insert(99, 99))


async def test_a_caller_that_gives_up_still_gets_its_write_committed(table):
    lane: GroupCommit[int] = GroupCommit(table, name="t")
    task = asyncio.ensure_future(lane.submit(insert(5, 5)))
    await asyncio.sleep(0)
    task.cancel()
    await lane.close()
    assert await committed(table) == [5]


async def test_a_deadlock_runs_the_whole_batch_again(table):
    lost_once: list[bool] = []

    def write(i: int) -> Write[int]:
        async def run(conn: asyncpg.Connection) -> int:
            if i == 2 and not lost_once:
                lost_once.append(True)  # as PostgreSQL does when it breaks a deadlock
                await conn.execute("DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' "
                                   "USING ERRCODE = '40P01'; END $$")
            return await insert(i, i)(conn)

        return run

    lane: GroupCommit[int] = GroupCommit(table, name="t")
    results = await asyncio.gather(*(lane.submit(write(i)) for i in range(1, 4)))
    assert results == [1, 2, 3]
    assert await committed(table) == [1, 2, 3]
    assert lane.stats.retried == 1


# -- Set-based lanes: one statement for the whole batch ------------------------------------


async def insert_all(conn: asyncpg.Connection, items: Sequence[tuple[int, int]]) -> list[int]:
    rows = await conn.fetch(
        "INSERT INTO gc SELECT * FROM unnest($1::int[], $2::int[]) RETURNING id",
        [k for k, _ in items], [v for _, v in items])
    found = {r["id"] for r in rows}
    return [k if k in found else -1 for k, _ in items]


@pytest.mark.parametrize("atomic", [False, True])
async def test_a_set_based_lane_runs_a_batch_as_one_statement(table, atomic):
    statements: list[int] = []

    async def counted(conn: asyncpg.Connection, items: Sequence[tuple[int, int]]) -> list[int]:
        statements.append(len(items))
        return await insert_all(conn, items)

    lane: SetCommit[tuple[int, int], int] = SetCommit(table, counted, name="t", atomic=atomic)
    results = []

    async def one(i: int) -> None:
        results.append(await lane.submit((i, i)))
        # Committed the moment submit returns, with or without the lane's own transaction.
        assert await table.fetchval("SELECT 1 FROM gc WHERE id = $1", i)

    await asyncio.gather(*(one(i) for i in range(30)))
    assert sorted(results) == list(range(30))
    assert await committed(table) == list(range(30))
    assert len(statements) == lane.stats.batches < 30  # one statement per batch
    assert max(statements) > 1


@pytest.mark.parametrize("atomic", [False, True])
async def test_a_bad_item_of_a_set_based_batch_fails_only_its_caller(table, atomic):
    lane: SetCommit[tuple[int, int], int] = SetCommit(table, insert_all, name="t",
                                                      atomic=atomic)
    items = [(1, 1), (2, -5), (3, 3), (4, 4)]
    results = await asyncio.gather(*(lane.submit(i) for i in items), return_exceptions=True)
    assert results[0] == 1 and results[2] == 3 and results[3] == 4
    assert isinstance(results[1], asyncpg.CheckViolationError)
    assert await committed(table) == [1, 3, 4]


async def test_a_set_based_statement_that_answers_the_wrong_count_fails_its_batch(table):
    async def short(conn: asyncpg.Connection, items: Sequence[tuple[int, int]]) -> list[int]:
        return (await insert_all(conn, items))[:-1]

    lane: SetCommit[tuple[int, int], int] = SetCommit(table, short, name="t")
    results = await asyncio.gather(*(lane.submit((i, i)) for i in range(1, 4)),
                                   return_exceptions=True)
    # No caller gets another's answer, and nothing of the failed batch is committed.
    assert all(isinstance(r, RuntimeError) for r in results), results
    assert await committed(table) == []


async def test_sharded_lanes_keep_one_key_on_one_lane_and_close_them_all(table):
    seen: dict[str, list[int]] = {}

    def statement(name: str) -> Statement[tuple[int, int], int]:
        async def run(conn: asyncpg.Connection, items: Sequence[tuple[int, int]]) -> list[int]:
            seen.setdefault(name, []).extend(k for k, _ in items)
            return await insert_all(conn, items)

        return run

    shards = [SetCommit(table, statement(f"s{k}"), name=f"s{k}") for k in range(3)]
    lane: Sharded[tuple[int, int], int] = Sharded(shards, key=lambda item: item[1])
    futures = [asyncio.ensure_future(lane.submit((i, i % 3))) for i in range(30)]
    await asyncio.sleep(0)
    await lane.close()
    # Answered by close(); the callers' tasks take their answers on their next turn.
    assert await asyncio.gather(*futures) == list(range(30))
    # Key k went to shard k only, in the order submitted.
    assert seen == {
        f"s{k}": [i for i in range(30) if i % 3 == k] for k in range(3)}
    with pytest.raises(LaneClosed):
        await lane.submit((99, 0))
