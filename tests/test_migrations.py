"""Schema migrations on a fresh, empty database: once each, in order, safe to run together."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from smsnodes_hub import db
from smsnodes_hub.auth import accounts
from tests.cli.test_cli import cli_env, run_cli
from tests.support import ROOT, add_device, create_database, drop_database, send

CATALOG = """
SELECT c.relname, c.relkind::text, c.relpersistence::text FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' ORDER BY c.relname
"""


@pytest.fixture
async def empty_database(admin_dsn: str) -> AsyncIterator[str]:
    """A new database with nothing in it (not cloned from the migrated template)."""
    name = f"m_{uuid.uuid4().hex[:16]}"
    yield await create_database(admin_dsn, name)
    await drop_database(admin_dsn, name)


async def recorded(conn: asyncpg.Connection) -> list[tuple[int, str, object]]:
    rows = await conn.fetch("SELECT version, name, applied_at FROM schema_migrations "
                            "ORDER BY version")
    return [tuple(r) for r in rows]


def test_migration_files_are_numbered_in_order() -> None:
    found = db.migrations()
    versions = [m.version for m in found]
    assert versions == list(range(1, len(versions) + 1))
    assert all(m.path.is_file() for m in found)


def test_sql_readme_names_where_each_function_body_is_now() -> None:
    """sql/README.md points at the last migration that (re)defines each function and view."""
    last: dict[str, str] = {}
    for migration in db.migrations():
        text = migration.path.read_text()
        found = re.findall(r"(CREATE (?:OR REPLACE )?|DROP )(?:FUNCTION|VIEW) (\w+)", text)
        for verb, name in found:
            if verb == "DROP ":
                last.pop(name, None)
            else:
                last[name] = migration.path.name
    table = dict(re.findall(r"^\| `(\w+)` \| `([\w.]+)` \|$",
                            (db.SQL_DIR / "README.md").read_text(), re.MULTILINE))
    assert table == last


async def test_migrate_twice_applies_each_file_once(empty_database: str) -> None:
    expected = db.migrations()
    conn = await asyncpg.connect(empty_database)
    try:
        first = await db.migrate(conn)
        assert [m.version for m in first] == [m.version for m in expected]
        rows = await recorded(conn)
        assert [(v, n) for v, n, _ in rows] == [(m.version, m.name) for m in expected]
        catalog = [tuple(r) for r in await conn.fetch(CATALOG)]
        assert ("devices", "r", "p") in catalog and ("messages", "r", "p") in catalog

        assert await db.migrate(conn) == []
        assert await recorded(conn) == rows  # same rows, same applied_at
        assert [tuple(r) for r in await conn.fetch(CATALOG)] == catalog
    finally:
        await conn.close()


async def test_concurrent_migrators_both_finish_and_record_each_once(
    empty_database: str,
) -> None:
    one, two = (await asyncpg.connect(empty_database), await asyncpg.connect(empty_database))
    try:
        done_one, done_two = await asyncio.wait_for(
            asyncio.gather(db.migrate(one), db.migrate(two)), 30)
        versions = sorted(m.version for m in [*done_one, *done_two])
        assert versions == [m.version for m in db.migrations()]
        assert [v for v, _, _ in await recorded(one)] == versions
        # The advisory lock is released: a later migrator is not blocked.
        assert await asyncio.wait_for(db.migrate(one), 5) == []
        assert await one.fetchval(
            """SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database =
                   (SELECT oid FROM pg_database WHERE datname = current_database())""") == 0
    finally:
        await one.close()
        await two.close()


async def test_failed_migration_rolls_back_and_is_not_recorded(
    empty_database: str, tmp_path: Path
) -> None:
    (tmp_path / "001_good.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "002_bad.sql").write_text("CREATE TABLE half (id int); SELECT no_such_fn();")
    conn = await asyncpg.connect(empty_database)
    try:
        with pytest.raises(asyncpg.PostgresError):
            await db.migrate(conn, tmp_path)
        assert [v for v, _, _ in await recorded(conn)] == [1]
        tables = {r["relname"] for r in await conn.fetch(CATALOG)}
        assert "good" in tables and "half" not in tables
        # Fixed file: the next run applies just that one.
        (tmp_path / "002_bad.sql").write_text("CREATE TABLE half (id int);")
        assert [m.version for m in await db.migrate(conn, tmp_path)] == [2]
    finally:
        await conn.close()


async def test_cli_migrate_reports_what_it_did(empty_database: str, tmp_path: Path) -> None:
    env = cli_env(DATABASE_URL=empty_database)
    first = await run_cli("migrate", cwd=tmp_path, env=env)
    assert first.code == 0, first
    assert first.out.splitlines() == [f"applied {m.version:03d}_{m.name}"
                                      for m in db.migrations()]
    second = await run_cli("migrate", cwd=tmp_path, env=env)
    assert second.code == 0, second
    assert second.out.strip() == "database is up to date"


async def test_removing_a_device_leaves_no_events_of_its_messages(hub, pool) -> None:
    """The event log has no foreign key (sql/010): its rows go with their messages."""
    await add_device(hub, "shop-phone-1")
    await add_device(hub, "shop-phone-2")
    gone = await send(hub, "shop-phone-1")
    kept = await send(hub, "shop-phone-2")
    async with pool.acquire() as conn:
        assert await accounts.remove_device(conn, "shop-phone-1")
    events = {r["message_id"] for r in await pool.fetch("SELECT message_id FROM message_events")}
    assert events == {kept["messageId"]}
    assert gone["messageId"] not in events


async def test_one_recipient_status_is_the_rule_of_message_status_and_is_inlined(pool) -> None:
    """reports.py writes a one-recipient message's status with recipient_status(), which the
    planner must expand (a call per row is what it replaced), and which must say what
    message_status() says of one recipient."""
    states = ["queued", "dispatched", "accepted", "done", "scheduled", "cancelled", "expired"]
    recipients = ["pending", "retry", "sent", "delivered", "failed", "cancelled", "expired"]
    disagree = await pool.fetchval(
        """SELECT count(*) FROM unnest($1::text[]) s, unnest($2::text[]) r
            WHERE recipient_status(s, r) IS DISTINCT FROM message_status(s, ARRAY[r])""",
        states, recipients)
    assert disagree == 0
    plan = await pool.fetchval(
        "EXPLAIN (VERBOSE, FORMAT JSON) SELECT recipient_status(m.state, r.state) "
        "FROM messages m JOIN recipients r ON r.message_id = m.id")
    assert "recipient_status" not in plan and "CASE" in plan


async def test_webhook_listeners_is_expanded_into_the_statement_that_joins_it(pool) -> None:
    """The outbox insert of a batch of reports joins webhook_listeners() per outcome: it
    must plan as a join on webhooks, not as a function called for every row."""
    plan = await pool.fetchval(
        "EXPLAIN (FORMAT JSON) SELECT w.id FROM messages e "
        "CROSS JOIN LATERAL webhook_listeners(e.account_id, 'message.' || e.status) AS w(id)")
    assert "Function Scan" not in plan and '"webhooks"' in plan


def test_the_package_carries_the_migrations_so_an_installed_hub_can_migrate() -> None:
    """sql/ is linked into the package (pyproject ships it as package data in the wheel)."""
    package = Path(db.__file__).resolve().parent
    assert package / "sql" == db.SQL_DIR
    shipped = sorted(p.name for p in db.SQL_DIR.glob("*.sql"))
    assert shipped == sorted(p.name for p in (ROOT / "sql").glob("*.sql")) and shipped
