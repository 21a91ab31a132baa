"""PostgreSQL: the embedded server, the connection pool and the schema migrations."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from smsnodes_hub.config import DatabaseSettings

log = logging.getLogger(__name__)

# sql/ at the top of the repository, linked into the package so that a wheel ships it.
SQL_DIR = Path(__file__).resolve().parent / "sql"
DATABASE_NAME = "smsnodes"
_MIGRATION_LOCK = 0x736D736E  # advisory lock key: one migrator at a time across processes
_MIGRATION_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

# Errors that mean "the database cannot be reached right now", as opposed to a bad query.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.InternalClientError,  # a connection broken mid-operation
)
# Any failure of a statement: the database lost, or the statement refused.
FAILED: tuple[type[BaseException], ...] = (*UNAVAILABLE, asyncpg.PostgresError)


class DatabaseUnavailable(Exception):
    """The database could not be reached; the message says where and why (no secrets)."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path


def migrations(sql_dir: Path = SQL_DIR) -> list[Migration]:
    found = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if match is None:
            raise RuntimeError(f"migration file name must look like 001_name.sql: {path.name}")
        found.append(Migration(int(match[1]), match[2], path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError("two migration files share a number")
    return found


async def migrate(conn: asyncpg.Connection, sql_dir: Path = SQL_DIR) -> list[Migration]:
    """Apply the migrations not yet recorded, each in its own transaction, in order.

    A session-level advisory lock makes concurrent migrators (two hub processes starting
    together) take turns: the second finds everything applied and does nothing."""
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        done = []
        for migration in migrations(sql_dir):
            if migration.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.path.read_text(encoding="utf-8"))
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("applied migration %03d_%s", migration.version, migration.name)
            done.append(migration)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


async def create_pool(dsn: str, settings: DatabaseSettings) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            command_timeout=settings.command_timeout,
            max_inactive_connection_lifetime=300,
            timeout=5,
            reset=_keep_session,
        )
    except _CONNECT_FAILURES as exc:
        raise _unavailable(dsn, exc) from exc
    assert pool is not None
    return pool


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release a pooled connection without asyncpg's default reset query.

    That query (unlock advisory locks, close cursors, UNLISTEN, RESET ALL) is one more round
    trip after every statement, about a quarter of the send path's database time
    (docs/performance.md). Pooled connections never carry session state here: LISTEN and
    the migration's advisory lock use connections of their own, and nothing SETs, opens
    cursors or creates temporary tables. asyncpg still rolls back a transaction left open
    before it calls this."""


async def connect(dsn: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn, timeout=5)
    except _CONNECT_FAILURES as exc:
        raise _unavailable(dsn, exc) from exc


# While connecting, a server error (unknown database, bad password, no such role) and a URL
# asyncpg cannot parse also mean "cannot use the database": one message, not a traceback.
_CONNECT_FAILURES: tuple[type[BaseException], ...] = (*UNAVAILABLE, asyncpg.PostgresError,
                                                      ValueError)


def _unavailable(dsn: str, exc: BaseException) -> DatabaseUnavailable:
    # asyncpg's ValueErrors come from parsing the URL and may quote it: show only its type.
    reason = "invalid database URL" if type(exc) is ValueError else str(exc) or type(exc).__name__
    return DatabaseUnavailable(f"cannot connect to the database at {redact(dsn)}: {reason}")


_SECRET_PARAMS = {"password", "sslpassword"}


def redact(dsn: str) -> str:
    """The URL without its password (in the user part or `?password=`), for messages and logs."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "(unparsable database URL)"
    # Work on the raw text: `parts.password` is percent-decoded and would not match it.
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at:
        user, _, password = userinfo.partition(":")
        if password:
            netloc = f"{user}:***@{hosts}"
    query = "&".join(
        f"{name}=***" if name.lower() in _SECRET_PARAMS else pair
        for pair in parts.query.split("&") if pair
        for name in [pair.partition("=")[0]]
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))
