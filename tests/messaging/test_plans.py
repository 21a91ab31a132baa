"""The hot path's statements keep their plans when the statistics are stale: a fleet back
after an outage finds thousands of messages queued that the last ANALYZE never saw."""

from __future__ import annotations

import json
import uuid

import asyncpg

from smsnodes_hub.device import sessions
from smsnodes_hub.messaging import messages
from tests.support import add_device, plan_indexes

_INSERT = """
INSERT INTO messages (account_id, device_id, priority, state, body, recipient_count, status)
SELECT d.account_id, d.id, 1, $2, '\\x00', 1, $3
  FROM generate_series(1, $4) g
  JOIN devices d ON d.id = ($1::bigint[])[1 + g % cardinality($1::bigint[])]
"""


async def _generic_plan(conn: asyncpg.Connection, sql: str, types: list[str]) -> dict:
    # As a prepared statement runs after its first few calls: one plan for any batch.
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    name = f"p{uuid.uuid4().hex}"
    await conn.execute(f"PREPARE {name} ({', '.join(types)}) AS {sql}")
    nulls = ", ".join("NULL" for _ in types)
    raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE {name}({nulls})")
    return json.loads(raw)[0]["Plan"]


async def test_claims_acks_and_logins_read_their_own_indexes_after_a_burst(pool) -> None:
    devices = [await add_device(pool, f"fleet-phone-{n}") for n in range(20)]
    await pool.execute(_INSERT, devices, "done", "delivered", 50)
    await pool.execute("ANALYZE messages")  # it saw no open message at all
    await pool.execute(_INSERT, devices, "queued", "queued", 5000)
    await pool.execute(_INSERT, devices, "dispatched", "dispatched", 500)
    open_only = {"messages_accepted", "messages_in_flight", "messages_queue"}
    async with pool.acquire() as conn:
        claim = plan_indexes(await _generic_plan(
            conn, messages._CLAIM.many,
            ["bigint[]", "uuid[]", "integer[]", "integer[]", "bigint[]"]))
        ack = plan_indexes(await _generic_plan(
            conn, messages._ACK.many, ["bigint[]", "bigint[]", "integer[]"]))
        # A lone claim or ack (smsnodes_hub/set_statements.py) reads the same indexes.
        lone_claim = plan_indexes(await _generic_plan(
            conn, messages._CLAIM.one, ["bigint", "uuid", "integer", "integer", "bigint"]))
        lone_ack = plan_indexes(await _generic_plan(
            conn, messages._ACK.one, ["bigint", "bigint", "integer"]))
        login = plan_indexes(await _generic_plan(
            conn, sessions._REGISTER_ALL.many,
            ["uuid", "bigint[]", "uuid[]", "text[]", "text[]", "text[]", "smallint[]",
             "bigint[]", "bigint[]"]))
        lone_login = plan_indexes(await _generic_plan(
            conn, sessions._REGISTER_ALL.one,
            ["uuid", "bigint", "uuid", "text", "text", "text", "smallint", "bigint", "bigint"]))
    # The device's queue by its own index; an ack by the message's id; a login's requeue of
    # what another connection held by the device's in-flight index.
    assert "messages_queue" in claim and "messages_queue" in lone_claim, (claim, lone_claim)
    assert "messages_pkey" in ack and not ack & open_only, ack
    assert "messages_pkey" in lone_ack and not lone_ack & open_only, lone_ack
    assert "messages_in_flight" in login and "messages_in_flight" in lone_login, (
        login, lone_login)
    assert not {i for i in claim | ack | login if "open" in i}, (claim, ack, login)
