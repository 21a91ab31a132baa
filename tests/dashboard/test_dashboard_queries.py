"""The dashboard's SQL on a real PostgreSQL: what the message search reads (the stored
status and its index), and the counters of issue 16 (failed webhook attempts, retries)."""

from __future__ import annotations

import json

import asyncpg

from smsnodes_hub.dashboard import queries
from tests.support import add_device, plan_indexes

# 20,000 messages over four accounts, newest first; `failed` only among the 100 oldest.
_MANY = """
INSERT INTO messages (account_id, device_id, priority, state, body, recipient_count,
                      created_at, status)
SELECT d.account_id, d.id, 3, 'accepted', '\\x00', 1, now() - make_interval(secs => g),
       CASE WHEN g > 19900 THEN 'failed' ELSE 'delivered' END
  FROM generate_series(1, 20000) g JOIN devices d ON d.id = $1 + (g % 4)
"""


async def test_the_status_filter_reads_the_stored_status_through_its_index(
    pool: asyncpg.Pool,
) -> None:
    devices = [await add_device(pool, f"phone-{n}") for n in range(4)]
    await pool.execute(_MANY, devices[0])
    await pool.execute("ANALYZE messages")
    searches = (queries.MessageSearch(status="failed"),
                queries.MessageSearch(device_id=devices[1], status="failed"))
    async with pool.acquire() as conn:
        for n, search in enumerate(searches):
            sql, args = queries.search_statement(search, 51, 0)
            # As prepared statements end up after a few runs: one plan for any argument.
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            await conn.execute(f"PREPARE search{n} AS {sql}")
            values = f"({', '.join(str(a) for a in args)})" if args else ""
            raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE search{n}{values}")
            plan = json.loads(raw)[0]["Plan"]
            assert "messages_account_status" in plan_indexes(plan), json.dumps(plan, indent=1)
            rows = await queries.search_messages(conn, search, 51, 0)
            assert {r["status"] for r in rows} == {"failed"}
            if search.device_id:
                assert {r["device_id"] for r in rows} == {devices[1]} and len(rows) == 25
            else:
                assert len(rows) == 51
