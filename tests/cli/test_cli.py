"""The operator's command line, run as the real entry point in a subprocess."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from smsnodes_hub.auth import accounts, crypto, logins
from smsnodes_hub.auth.accounts import Principal
from smsnodes_hub.auth.logins import Authenticator, CredentialCache
from smsnodes_hub.messaging import inbound, messages
from tests.support import CHEAP_KDF_ENV, PASSWORD, with_database

CHEAP = crypto.KdfParams(memory_kib=8, iterations=1, lanes=1)
NEW_PASSWORD = "a brand new passphrase"


@dataclass(frozen=True, slots=True)
class Run:
    code: int
    out: str
    err: str

    def one_error_line(self) -> str:
        """The single stderr line of a failed command, after checking it is one clean line."""
        assert self.code != 0, self
        assert "Traceback" not in self.err, self.err
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("smsnodes-hub: "), lines[0]
        return lines[0]


Cli = Callable[..., Awaitable[Run]]


def cli_env(**env: str) -> dict[str, str]:
    """The caller's environment minus anything that configures the hub, plus `env`."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("SMSNODES_") and k != "DATABASE_URL"}
    return {**base, **CHEAP_KDF_ENV, **env}


async def run_cli(*args: str, cwd: Path, env: dict[str, str], stdin: str = "") -> Run:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsnodes_hub", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=cwd, env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    """`await cli("device", "list", stdin=..., DATABASE_URL=...)`: the hub's CLI on the test
    database, from an empty folder so no config.toml is picked up."""

    async def run(*args: str, stdin: str = "", **env: str) -> Run:
        return await run_cli(*args, cwd=tmp_path, stdin=stdin,
                             env=cli_env(**{"DATABASE_URL": database_url, **env}))

    return run


@pytest.fixture
async def auth() -> AsyncIterator[Authenticator]:
    # No credential cache: each login really checks the database, as a fresh hub would.
    authenticator = Authenticator(crypto.PasswordKdf(1), CHEAP, CredentialCache(0))
    yield authenticator
    authenticator.kdf.close()


async def make_device(pool: asyncpg.Pool, auth: Authenticator, name: str,
                      password: str = PASSWORD) -> Principal:
    async with pool.acquire() as conn:
        await accounts.create_device(conn, auth.kdf, CHEAP, name, password)
    principal = await auth.login(pool, name, password)
    assert principal is not None
    return principal


async def store_message(pool: asyncpg.Pool, principal: Principal, text: str) -> int:
    inserted = await messages.insert(pool, messages.new_message(
        principal, priority=1, text=text, numbers=["+15551234567"], dispatch_to=None,
        notify=False, local_online=False, stale_seconds=15,
    ))
    assert inserted.id is not None
    return inserted.id


async def device_rows(pool: asyncpg.Pool) -> list[tuple[object, ...]]:
    rows = await pool.fetch(
        """SELECT d.id, d.username, d.verifier, d.wrapped_key, d.credential_epoch,
                  (SELECT count(*) FROM tokens t WHERE t.device_id = d.id) AS tokens,
                  (SELECT count(*) FROM messages m WHERE m.device_id = d.id) AS messages
             FROM devices d ORDER BY d.id""")
    return [tuple(r) for r in rows]


# -- Happy paths -----------------------------------------------------------------------------


async def test_add_with_password_on_stdin(cli: Cli, pool, auth) -> None:
    run = await cli("device", "add", "shop-phone-1", "--password-stdin", stdin=PASSWORD + "\n")
    assert run.code == 0, run
    assert "created device 'shop-phone-1'" in run.out
    assert PASSWORD not in run.out + run.err
    principal = await auth.login(pool, "shop-phone-1", PASSWORD)
    assert principal is not None and principal.username == "shop-phone-1"
    assert await auth.login(pool, "shop-phone-1", PASSWORD + "x") is None


async def test_generated_password_is_printed_once_and_logs_in(cli: Cli, pool, auth) -> None:
    run = await cli("device", "add", "phone-gen", "--generate-password")
    assert run.code == 0, run
    match = re.search(r"generated password \(shown only now\): (\S+)", run.out)
    assert match, run.out
    password = match[1]
    assert len(password) >= 16
    assert run.out.count(password) == 1 and password not in run.err
    assert await auth.login(pool, "phone-gen", password) is not None
    # A second device gets a different password.
    again = await cli("device", "add", "phone-gen-2", "--generate-password")
    assert again.code == 0 and password not in again.out


async def test_list_shows_id_name_created_and_last_seen(cli: Cli, pool, auth) -> None:
    empty = await cli("device", "list")
    assert empty.code == 0 and "no devices yet" in empty.out
    first = await make_device(pool, auth, "phone-one")
    second = await make_device(pool, auth, "phone-two")
    seen = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    await pool.execute("UPDATE devices SET last_seen_at = $1 WHERE id = $2",
                       seen, second.device_id)
    created = await pool.fetchval("SELECT created_at FROM devices WHERE id = $1",
                                  first.device_id)

    run = await cli("device", "list")
    assert run.code == 0, run
    header, *rows = run.out.strip().splitlines()
    assert header.split() == ["ID", "NAME", "CREATED", "LAST", "SEEN"]
    assert [r.split()[:2] for r in rows] == [
        [str(first.device_id), "phone-one"], [str(second.device_id), "phone-two"]]
    assert created.strftime("%Y-%m-%d %H:%M") in rows[0]
    assert rows[0].endswith("never")
    assert rows[1].endswith("2026-03-04 05:06:07")


async def test_passwd_keeps_the_data_key_and_ends_old_credentials(cli: Cli, pool, auth) -> None:
    before = await make_device(pool, auth, "phone-p")
    token, _ = await logins.issue_session_token(pool, before)  # type: ignore[misc]
    assert await auth.login_token(pool, token) is not None
    queued = await store_message(pool, before, "queued before the change")

    run = await cli("device", "passwd", "phone-p", "--password-stdin",
                    stdin=f"{PASSWORD}\n{NEW_PASSWORD}\n")
    assert run.code == 0, run
    # A device account: the phone and the account share the name, and the password.
    assert run.out.strip() == ("password changed for phone 'phone-p' and account 'phone-p' "
                               "(one name, one password); their tokens and sessions no longer "
                               "work")
    assert PASSWORD not in run.out + run.err and NEW_PASSWORD not in run.out + run.err

    assert await auth.login(pool, "phone-p", PASSWORD) is None
    assert await auth.login_token(pool, token) is None
    after = await auth.login(pool, "phone-p", NEW_PASSWORD)
    assert after is not None
    assert after.data_key == before.data_key
    assert after.credential_epoch == before.credential_epoch + 1
    # What was queued under the old password is still there and still readable.
    body = await pool.fetchval("SELECT body FROM messages WHERE id = $1", queued)
    assert after.open(body, messages.TEXT_PURPOSE) == "queued before the change"
    # A login cached from before the change cannot mint working tokens any more.
    assert await logins.issue_session_token(pool, before) is None
    fresh = await logins.issue_session_token(pool, after)
    assert fresh is not None and await auth.login_token(pool, fresh[0]) is not None


async def test_passwd_reset_starts_a_new_key_and_deletes_stored_data(
    cli: Cli, pool, auth
) -> None:
    before = await make_device(pool, auth, "phone-r")
    other = await make_device(pool, auth, "phone-other")
    token, _ = await logins.issue_session_token(pool, before)  # type: ignore[misc]
    await store_message(pool, before, "unreadable after a reset")
    await inbound.store_inbound(pool, before, "ref-1", "+15550001111", "hi",
                                 datetime.now(UTC))
    kept = await store_message(pool, other, "belongs to another account")

    run = await cli("device", "passwd", "phone-r", "--reset", "--password-stdin",
                    stdin=f"{NEW_PASSWORD}\n")
    assert run.code == 0, run
    assert "stored messages deleted" in run.out

    assert await auth.login(pool, "phone-r", PASSWORD) is None
    assert await auth.login_token(pool, token) is None
    after = await auth.login(pool, "phone-r", NEW_PASSWORD)
    assert after is not None and after.account_id == before.account_id
    assert after.data_key != before.data_key
    account = before.account_id
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE account_id = $1",
                               account) == 0
    assert await pool.fetchval("SELECT count(*) FROM inbound_messages WHERE account_id = $1",
                               account) == 0
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE id = $1", kept) == 1
    assert await auth.login(pool, "phone-other", PASSWORD) is not None


async def test_remove_deletes_the_device_and_its_account(cli: Cli, pool, auth) -> None:
    gone = await make_device(pool, auth, "phone-gone")
    await make_device(pool, auth, "phone-stays")
    await logins.issue_session_token(pool, gone)
    await store_message(pool, gone, "goes with the device")

    run = await cli("device", "remove", "phone-gone")
    assert run.code == 0, run
    assert "removed device 'phone-gone'" in run.out
    assert await auth.login(pool, "phone-gone", PASSWORD) is None
    assert await pool.fetchval("SELECT count(*) FROM accounts WHERE id = $1",
                               gone.account_id) == 0
    assert await pool.fetchval("SELECT count(*) FROM tokens") == 0
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    listing = await cli("device", "list")
    assert "phone-gone" not in listing.out and "phone-stays" in listing.out


# -- Errors: one line on stderr, a non-zero exit, and nothing changed ---------------------------


async def test_every_error_is_one_line_and_changes_nothing(
    cli: Cli, pool, auth, database_url: str
) -> None:
    await make_device(pool, auth, "phone-1")
    unknown_db = with_database(database_url, "no_such_database")
    cases: list[tuple[str, list[str], str, dict[str, str], str]] = [
        # (what, argv, stdin, env, expected in the message)
        ("duplicate name", ["device", "add", "phone-1", "--password-stdin"],
         "another password\n", {}, "already exists"),
        ("duplicate name, generated password",
         ["device", "add", "phone-1", "--generate-password"], "", {}, "already exists"),
        ("passwd unknown name", ["device", "passwd", "nobody", "--password-stdin"],
         f"{PASSWORD}\n{NEW_PASSWORD}\n", {}, "no device named 'nobody'"),
        ("reset unknown name", ["device", "passwd", "nobody", "--reset", "--password-stdin"],
         f"{NEW_PASSWORD}\n", {}, "no device named 'nobody'"),
        ("remove unknown name", ["device", "remove", "nobody"], "", {},
         "no device named 'nobody'"),
        ("short password", ["device", "add", "phone-2", "--password-stdin"], "short\n", {},
         "at least 8 characters"),
        ("short new password", ["device", "passwd", "phone-1", "--password-stdin"],
         f"{PASSWORD}\nshort\n", {}, "at least 8 characters"),
        ("one-letter username", ["device", "add", "a", "--password-stdin"],
         f"{PASSWORD}\n", {}, "username must be"),
        ("username with a space", ["device", "add", "bad name!", "--password-stdin"],
         f"{PASSWORD}\n", {}, "username must be"),
        # `$` in a regex also matches before a final newline; the database would refuse it.
        ("username with a trailing newline", ["device", "add", "abc\n", "--password-stdin"],
         f"{PASSWORD}\n", {}, "username must be"),
        ("username with a trailing newline, generated password",
         ["device", "add", "phone-9\n", "--generate-password"], "", {}, "username must be"),
        ("wrong current password", ["device", "passwd", "phone-1", "--password-stdin"],
         f"not the password\n{NEW_PASSWORD}\n", {}, "current password is wrong"),
        ("no password on stdin", ["device", "add", "phone-3", "--password-stdin"], "", {},
         "no password on standard input"),
        ("passwd without a terminal", ["device", "passwd", "phone-1"], "", {},
         "current password is needed"),
        ("database unreachable", ["device", "list"], "",
         {"DATABASE_URL": "postgresql://u:s3cretpw@127.0.0.1:1/db"}, "cannot connect"),
        ("unreachable, encoded password", ["device", "list"], "",
         {"DATABASE_URL": "postgresql://u:s3cret%40pw@127.0.0.1:1/db"}, "u:***@127.0.0.1"),
        ("unreachable, password parameter", ["device", "list"], "",
         {"DATABASE_URL": "postgresql://u@127.0.0.1:1/db?password=s3cretpw"}, "password=***"),
        ("bad port in the URL", ["device", "list"], "",
         {"DATABASE_URL": "postgresql://u:s3cretpw@127.0.0.1:x/db"}, "invalid database URL"),
        ("database missing", ["device", "add", "phone-4", "--password-stdin"],
         f"{PASSWORD}\n", {"DATABASE_URL": unknown_db}, "no_such_database"),
    ]
    snapshot = await device_rows(pool)
    for what, argv, stdin, env, expected in cases:
        run = await cli(*argv, stdin=stdin, **env)
        assert run.code == 1, (what, run)
        line = run.one_error_line()
        assert expected in line, (what, line)
        assert "generated password" not in run.out, (what, run)  # never print a dead one
        for secret in (PASSWORD, NEW_PASSWORD, "s3cret", "another password"):
            assert secret not in run.err and secret not in run.out, (what, run)
        assert await device_rows(pool) == snapshot, what
    # The wrong current password did not lock the owner out.
    assert await auth.login(pool, "phone-1", PASSWORD) is not None


def _run_in_terminal(args: list[str], answers: list[str], *, cwd: Path,
                     env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal (its controlling tty, as getpass wants), answering
    each prompt that ends in ': ' with the next of `answers`. Returns (exit code, screen)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the CLI at once
        os.chdir(cwd)
        os.execve(sys.executable,  # noqa: S606 - the real entry point, fixed arguments
                  [sys.executable, "-m", "smsnodes_hub", *args], env)
    screen, pending = b"", list(answers)
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 60)
            if not ready:
                raise AssertionError(f"the CLI hung; screen so far: {screen!r}")
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
            if pending and screen.rstrip(b" ").endswith(b":"):
                os.write(fd, pending.pop(0).encode() + b"\n")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), screen.decode(errors="replace")


async def test_add_asks_for_the_password_twice_on_a_terminal(
    database_url: str, tmp_path: Path, pool, auth
) -> None:
    env = cli_env(DATABASE_URL=database_url)
    code, screen = await asyncio.to_thread(
        _run_in_terminal, ["device", "add", "phone-tty"], [PASSWORD, PASSWORD],
        cwd=tmp_path, env=env)
    assert code == 0, screen
    assert screen.count("assword") >= 2 and "created device 'phone-tty'" in screen
    assert PASSWORD not in screen  # getpass does not echo
    assert await auth.login(pool, "phone-tty", PASSWORD) is not None
    # Two different answers: refused, nothing created.
    code, screen = await asyncio.to_thread(
        _run_in_terminal, ["device", "add", "phone-tty2"], [PASSWORD, PASSWORD + "x"],
        cwd=tmp_path, env=env)
    assert code != 0 and "do not match" in screen, screen
    assert await pool.fetchval("SELECT count(*) FROM devices WHERE username = 'phone-tty2'") == 0


async def test_add_without_a_terminal_points_to_password_stdin(
    cli: Cli, database_url: str, tmp_path: Path, pool
) -> None:
    # Piped input without --password-stdin: a usage error (2), not a trace.
    run = await cli("device", "add", "phone-piped", stdin=f"{PASSWORD}\n")
    assert run.code == 2, run
    assert "--password-stdin" in run.one_error_line()
    # On a terminal whose input ends (Ctrl-D, or a pipe into a pty) at the second prompt.
    code, screen = await asyncio.to_thread(
        _run_in_terminal, ["device", "add", "phone-eof"], [PASSWORD, "\x04"],
        cwd=tmp_path, env=cli_env(DATABASE_URL=database_url))
    assert code == 2 and "Traceback" not in screen and "--password-stdin" in screen, screen
    assert await pool.fetchval("SELECT count(*) FROM devices") == 0
