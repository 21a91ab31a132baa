"""The hot path's group-commit lanes (smsnodes_hub/batching.py), one per kind of write.

Separate lanes keep kinds from queueing behind each other: claims (which put frames on the
wire) never wait for new sends, nor either for phones' acks and reports. A phone's acks and
reports share its lane: they change the same rows, and on two lanes each would wait for
the other's transaction to commit. (Its window frees as an ack arrives, before the write.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from smsnodes_hub.batching import Connection, SetCommit, Sharded
from smsnodes_hub.messaging import messages, reports

# Writes per transaction at most: large enough that a commit serves many writes under
# load, small enough that the first caller of a batch never waits long for the last.
MAX_BATCH = 64
PHONE_LANES = 3

PhoneWrite = messages.Ack | reports.StatusReport
PhoneResult = int | None | reports.StatusOutcome


async def phone_writes(conn: Connection, items: Sequence[PhoneWrite]) -> list[PhoneResult]:
    """A batch of phones' acks and reports: the reports first, so that an ack whose report
    came with it finds the message accepted already and writes nothing. One statement
    when it can (atomic alone), else a transaction around them."""
    results: list[PhoneResult] = [None] * len(items)
    told = [(k, i) for k, i in enumerate(items) if isinstance(i, reports.StatusReport)]
    acked = [(k, a) for k, a in enumerate(items) if isinstance(a, messages.Ack)]
    told_items = [i for _k, i in told]
    in_rounds = reports.rounds(told_items)
    statements = len(in_rounds) + (1 if acked else 0)
    async with contextlib.nullcontext() if statements == 1 else conn.transaction():
        if told:
            outcomes = await reports.record_statuses(conn, told_items, in_rounds)
            for (k, _i), outcome in zip(told, outcomes, strict=True):
                results[k] = outcome
        if acked:
            currents = await messages.ack_all(conn, [a for _k, a in acked])
            for (k, _a), current in zip(acked, currents, strict=True):
                results[k] = current
    return results


@dataclass(frozen=True, slots=True)
class Lanes:
    sends: SetCommit[messages.NewMessage, messages.Inserted]
    # One phone's writes stay in order on one lane: two transactions applying reports of
    # one message at once would each judge it from its own snapshot.
    phones: Sharded[PhoneWrite, PhoneResult]
    claims: SetCommit[messages.Claim, list[asyncpg.Record]]

    @classmethod
    def open(cls, pool: asyncpg.Pool) -> Lanes:
        # More than one transaction at once where the work is heaviest: PostgreSQL has two
        # cores to use, and one batch's round trips leave the other core idle.
        return cls(
            sends=SetCommit(pool, messages.insert_all, name="sends", max_batch=MAX_BATCH,
                            lanes=2, atomic=True),
            phones=Sharded([SetCommit(pool, phone_writes, name=f"phones{k}",
                                      max_batch=MAX_BATCH, atomic=True)
                            for k in range(PHONE_LANES)],
                           key=lambda item: item.device_id),
            claims=SetCommit(pool, messages.claim_all, name="claims", max_batch=MAX_BATCH,
                             atomic=True),
        )

    async def ack(self, ack: messages.Ack) -> int | None:
        """The message's current attempt, or None when the phone has no such message."""
        result = await self.phones.submit(ack)
        assert not isinstance(result, reports.StatusOutcome)
        return result

    async def report(self, report: reports.StatusReport) -> reports.StatusOutcome:
        result = await self.phones.submit(report)
        assert isinstance(result, reports.StatusOutcome)
        return result

    async def close(self) -> None:
        """Flush every lane: what was queued is committed (or answered with its error)."""
        await self.sends.close()
        await self.phones.close()
        await self.claims.close()
