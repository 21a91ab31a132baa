"""Group commit: writes that arrive together from many requests and sockets share one
transaction, and so one commit, while each caller still awaits its own outcome.

A batch starts as soon as the lane is free (an idle database never waits for company) and
takes whatever queued meanwhile, up to `max_batch`. Durability is unchanged: a caller's
`submit` returns only after the transaction holding its write has committed.

Failures stay with their owner: a statement that fails for its own row (a constraint, bad
data) rolls the transaction back, that caller gets the error, and the others run again
without it. A deadlock or serialization failure runs the whole batch again (a few times). A lost or
refused database, or a failed COMMIT, answers every caller of the batch with the error:
none of them was committed.

Two kinds of lane share that machinery. A `GroupCommit` runs each caller's own write, one
statement after another. A `SetCommit` runs a whole batch as one set-based statement over
all its items, which saves PostgreSQL a statement per write and the hub a round trip; when
that statement fails for a row, the batch runs again one item per statement to find whose
row it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar

import asyncpg

from smsnodes_hub.db import FAILED, UNAVAILABLE

log = logging.getLogger(__name__)

R = TypeVar("R")
P = TypeVar("P")  # what a caller queues: its write, or its item of a set-based statement
T = TypeVar("T")

Connection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[Any]"
# One caller's write: statements on the batch's connection, inside its transaction.
Write = Callable[[Connection], Awaitable[R]]
# A set-based lane's statement: the results of all `items`, in their order.
Statement = Callable[[Connection, Sequence[T]], Awaitable[list[R]]]

# Raised by the connection or the server as a whole, not by one row's statement.
_WHOLE_BATCH: tuple[type[BaseException], ...] = (
    *UNAVAILABLE,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.QueryCanceledError,
)


# Failures of the transaction, not of a row: the batch is run again, this many times.
_TRANSIENT: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)
TRANSIENT_RETRIES = 3
CLOSE_TIMEOUT = 10.0


class LaneClosed(Exception):
    """The lane was closed (the hub is stopping): nothing more is accepted."""


# What a write through a lane may raise when it was not committed: the database failed, or
# the hub is stopping.
NOT_COMMITTED: tuple[type[BaseException], ...] = (*FAILED, LaneClosed)


class _Lane(Generic[P, R]):
    """What both kinds of lane share: the queue, the batches and their failures."""

    set_based: ClassVar[bool] = False
    __slots__ = ("_batches", "_closed", "_lanes", "_max_batch", "_pending", "_pool",
                 "atomic", "name", "stats")

    def __init__(self, pool: asyncpg.Pool, *, name: str, max_batch: int = 64,
                 lanes: int = 1) -> None:
        self.name = name
        self._pool = pool
        self._max_batch = max_batch
        self._lanes = lanes
        self._pending: deque[tuple[P, asyncio.Future[R]]] = deque()
        self._batches: set[asyncio.Task[None]] = set()
        self._closed = False
        self.atomic = False  # the batch's write needs no transaction of the lane's
        self.stats = BatchStats()

    async def submit(self, payload: P) -> R:
        if self._closed:
            raise LaneClosed(self.name)
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        # Retrieved here too: a caller that stopped waiting must not leave it unobserved.
        future.add_done_callback(_observe)
        self._pending.append((payload, future))
        self._start_batches()
        # shield: a caller that gives up (a closed socket, a cancelled request) does not
        # cancel the batch; its write commits or fails with the others.
        return await asyncio.shield(future)

    async def _one(self, conn: Connection, payload: P) -> R:
        """One caller's write alone."""
        raise NotImplementedError

    async def _all(self, conn: Connection, payloads: list[P]) -> list[R] | None:
        """The whole batch at once, or None when this lane runs writes one by one."""
        return None

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Accept nothing more and wait until every queued write has been answered; after
        `timeout` seconds, what is still running is cancelled and answered LaneClosed (a
        stop must never hang; nothing unanswered was promised to anyone)."""
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._batches:
            left = deadline - loop.time()
            if left <= 0:
                log.warning("group commit %s: %d batch(es) still running at close; "
                            "cancelled", self.name, len(self._batches))
                for task in self._batches:
                    task.cancel()
                await asyncio.gather(*self._batches, return_exceptions=True)
                break
            await asyncio.wait(self._batches, timeout=left)
        _fail(list(self._pending), LaneClosed(self.name))
        self._pending.clear()

    def _start_batches(self) -> None:
        while self._pending and len(self._batches) < self._lanes:
            task = asyncio.create_task(self._drain(), name=f"group-commit-{self.name}")
            self._batches.add(task)
            task.add_done_callback(self._batch_ended)

    def _batch_ended(self, task: asyncio.Task[None]) -> None:
        self._batches.discard(task)
        # A write queued after the drain loop last looked, while this task still counted
        # as running, would otherwise wait for the next submit: start a batch for it.
        self._start_batches()

    async def _drain(self) -> None:
        while self._pending:
            batch = [self._pending.popleft()
                     for _ in range(min(self._max_batch, len(self._pending)))]
            await self._run(batch)

    async def _run(self, batch: list[tuple[P, asyncio.Future[R]]]) -> None:
        tries = 0
        together = True  # a set-based lane tries the whole batch in one statement first
        while batch:
            results: list[R] = []
            committing = False
            try:
                async with self._pool.acquire() as conn, (
                        contextlib.nullcontext() if together and self.atomic
                        else conn.transaction()):
                    whole = await self._all(conn, [p for p, _f in batch]) if together else None
                    if whole is not None:
                        if len(whole) != len(batch):
                            raise RuntimeError(f"{self.name}: {len(whole)} results for "
                                               f"{len(batch)} items")
                        results = whole
                    else:
                        for payload, _future in batch:
                            results.append(await self._one(conn, payload))
                    committing = True
            except asyncio.CancelledError:
                _fail(batch, LaneClosed(self.name))
                raise
            except _TRANSIENT as exc:
                # Lost to another transaction (a deadlock between lanes, a serialization
                # failure): nobody's row is at fault, so the whole batch runs again.
                tries += 1
                if tries > TRANSIENT_RETRIES:
                    _fail(batch, exc)
                    return
                self.stats.retried += 1
                continue
            except asyncpg.PostgresError as exc:
                if committing or isinstance(exc, _WHOLE_BATCH):
                    _fail(batch, exc)
                    return
                self.stats.retried += 1
                if together and self.set_based and len(batch) > 1:
                    # Some item's row failed the set-based statement: one by one, to see whose.
                    together = False
                    continue
                # The statement of write number len(results) failed for its own reasons: it alone
                # fails; the ones before it were rolled back and run again with the rest.
                _payload, future = batch.pop(len(results))
                _refuse(future, exc)
                continue
            except BaseException as exc:  # the connection, the pool, a bug in a step
                _fail(batch, exc)
                if not isinstance(exc, Exception):
                    raise
                return
            self.stats.record(len(batch))
            for (_payload, future), result in zip(batch, results, strict=True):
                _answer(future, result)
            return


class GroupCommit(_Lane[Write[R], R]):
    """One lane of writes of one kind: `submit(write)` runs `write(conn)` inside a
    transaction shared with the other writes queued at the same time."""

    __slots__ = ()

    async def _one(self, conn: Connection, payload: Write[R]) -> R:
        return await payload(conn)


class SetCommit(_Lane[T, R]):
    """A lane whose batch is one statement: `submit(item)` returns item's result of
    `statement(conn, items)`, run over every item queued at the same time."""

    __slots__ = ("_statement",)
    set_based = True

    def __init__(self, pool: asyncpg.Pool, statement: Statement[T, R], *, name: str,
                 max_batch: int = 64, lanes: int = 1, atomic: bool = False) -> None:
        """`atomic`: the statement is atomic by itself (one SQL statement, or it opens its
        own transaction when it needs several), so the lane sends no BEGIN and COMMIT
        around it: two round trips fewer a batch."""
        super().__init__(pool, name=name, max_batch=max_batch, lanes=lanes)
        self._statement = statement
        self.atomic = atomic

    async def _one(self, conn: Connection, payload: T) -> R:
        return (await self._statement(conn, [payload]))[0]

    async def _all(self, conn: Connection, payloads: list[T]) -> list[R] | None:
        return await self._statement(conn, payloads)


class Sharded(Generic[T, R]):
    """Several lanes of one kind, each item always on the same one (by `key`): writes that
    must see each other in order (one phone's reports) never run in two transactions at
    once, while other keys' writes use the other lanes."""

    __slots__ = ("_key", "shards")

    def __init__(self, shards: Sequence[_Lane[T, R]], key: Callable[[T], int]) -> None:
        self.shards = tuple(shards)
        self._key = key

    async def submit(self, item: T) -> R:
        return await self.shards[self._key(item) % len(self.shards)].submit(item)

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        for shard in self.shards:
            await shard.close(timeout)


class BatchStats:
    """Counters for benchmarks and tests: how many commits served how many writes."""

    __slots__ = ("batches", "largest", "retried", "writes")

    def __init__(self) -> None:
        self.batches = 0
        self.writes = 0
        self.largest = 0
        self.retried = 0

    def record(self, size: int) -> None:
        self.batches += 1
        self.writes += size
        self.largest = max(self.largest, size)


def _answer(future: asyncio.Future[R], result: R) -> None:
    if not future.done():  # a cancelled caller's write is settled all the same
        future.set_result(result)


def _refuse(future: asyncio.Future[R], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _observe(future: asyncio.Future[R]) -> None:
    if not future.cancelled():
        future.exception()


def _fail(batch: list[tuple[Any, asyncio.Future[R]]], exc: BaseException) -> None:
    for _payload, future in batch:
        _refuse(future, exc)
