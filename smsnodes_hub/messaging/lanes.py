"""The hot path's group-commit lanes (smsnodes_hub/batching.py), one per kind of write.

Separate lanes keep kinds from queueing behind each other: a phone's acks never wait for
its status reports, and claims (which put frames on the wire) never wait for new sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from smsnodes_hub.batching import GroupCommit, SetCommit, Sharded
from smsnodes_hub.messaging import messages, reports

# Writes per transaction at most: large enough that a commit serves many writes under
# load, small enough that the first caller of a batch never waits long for the last.
MAX_BATCH = 64
REPORT_LANES = 3


@dataclass(frozen=True, slots=True)
class Lanes:
    sends: SetCommit[messages.NewMessage, messages.Inserted]
    acks: SetCommit[messages.Ack, int | None]
    reports: Sharded[reports.StatusReport, reports.StatusOutcome]
    claims: GroupCommit[Any]

    @classmethod
    def open(cls, pool: asyncpg.Pool) -> Lanes:
        # Two transactions at once where the work is heaviest: PostgreSQL has two cores
        # to use, and one batch's round trips leave the other core idle.
        return cls(
            sends=SetCommit(pool, messages.insert_all, name="sends", max_batch=MAX_BATCH,
                            lanes=2),
            acks=SetCommit(pool, messages.ack_all, name="acks", max_batch=MAX_BATCH),
            # A phone's reports stay in order on one lane: two transactions applying
            # reports of one message at once would each judge it from its own snapshot.
            reports=Sharded([SetCommit(pool, reports.record_statuses, name=f"reports{k}",
                                       max_batch=MAX_BATCH) for k in range(REPORT_LANES)],
                            key=lambda report: report.device_id),
            claims=GroupCommit(pool, name="claims", max_batch=MAX_BATCH),
        )

    async def close(self) -> None:
        """Flush every lane: what was queued is committed (or answered with its error)."""
        for lane in (self.sends, self.acks, self.reports, self.claims):
            await lane.close()
