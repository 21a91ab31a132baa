"""The fuzzers' set-up: one hub per test module (Hypothesis runs thousands of examples
against it, so it is started once), two seeded accounts (the fuzzer's own, and another
whose ids it throws at the hub), a capture of every log record that holds a traceback, the
Hypothesis profiles, and the count of outcomes that `scripts/fuzz` prints.

Profiles (SMSNODES_FUZZ_PROFILE): `ci` (the default, inside scripts/test: a few thousand
examples in all, derandomized so that the suite is repeatable) and `long` (scripts/fuzz:
random, SMSNODES_FUZZ_EXAMPLES examples per test, failures kept in .hypothesis/ to replay)."""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, settings

from smsnodes_hub.app import create_app
from tests.fuzz.harness import FuzzHub, LogTrap
from tests.support import create_database, drop_database, seed_account, test_settings

PROFILE_ENV = "SMSNODES_FUZZ_PROFILE"
EXAMPLES_ENV = "SMSNODES_FUZZ_EXAMPLES"
OUTCOMES = pytest.StashKey[Counter[str]]()

_COMMON = {
    "deadline": None,  # a shared 2-core machine: time per example is not what is tested
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                              HealthCheck.function_scoped_fixture,
                              HealthCheck.filter_too_much],
    "print_blob": True,
}
settings.register_profile("ci", max_examples=350, derandomize=True, database=None, **_COMMON)
settings.register_profile("long", max_examples=int(os.environ.get(EXAMPLES_ENV, "15000")),
                          **_COMMON)
settings.load_profile(os.environ.get(PROFILE_ENV, "ci"))

# The fuzzed hub: cheap Argon2id (tests/support.py), no send rate limit, a login
# throttle loose enough that the fuzzer's wrong passwords do not lock out its own account
# (the throttle has tests of its own: tests/auth/test_throttle.py).
FUZZ_ENV = {
    "SMSNODES_LIMITS_SEND_PER_MINUTE": "0",
    "SMSNODES_SECURITY_LOGIN_MAX_FAILURES": "1000",
    "SMSNODES_SECURITY_LOGIN_MAX_FAILURES_PER_USERNAME": "100000",
    "SMSNODES_SECURITY_LOGIN_LOCKOUT_SECONDS": "1",
    # No message goes back to the queue on a timer while a refused frame is checked for
    # having written nothing.
    "SMSNODES_DEVICE_ACK_TIMEOUT": "86400",
    # The fuzzer's phone answers pings only while it reads, and Hypothesis may pause between
    # examples (shrinking): a missed ping is not what is under test here.
    "SMSNODES_DEVICE_HEARTBEAT": "3600",
}
PUBLIC_HOOK = "https://93.184.216.34/hooks/sms"  # a public literal: never contacted (see below)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[OUTCOMES] = Counter()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    counts = terminalreporter.config.stash.get(OUTCOMES, Counter())
    if not counts:
        return
    write = terminalreporter.write_line
    terminalreporter.section(f"fuzz outcomes ({sum(counts.values())} requests and frames)")
    width = max(len(k) for k in counts)
    for outcome, n in sorted(counts.items()):
        write(f"{outcome:<{width}}  {n:>8}")
    # The same, by answer alone: HTTP status and error code, close codes, frame replies.
    answers: Counter[str] = Counter()
    for outcome, n in counts.items():
        if outcome.startswith("http "):
            answers["http " + outcome.split(" ", 3)[3]] += n
        else:
            side, _, what = outcome.partition(": ")  # "ws after auth: ack error"
            kept = what if what.startswith(("close", "auth_ok")) else what.partition(" ")[2]
            answers[f"{side}: {kept}"] += n
    write("")
    write("by answer:")
    for answer, n in sorted(answers.items()):
        write(f"  {answer:<{width - 2}}  {n:>8}")


@pytest.fixture(scope="session")
def outcomes(request: pytest.FixtureRequest) -> Counter[str]:
    return request.config.stash[OUTCOMES]


@pytest.fixture(scope="module")
def log_trap() -> Iterator[LogTrap]:
    trap = LogTrap()
    root = logging.getLogger()
    root.addHandler(trap)
    yield trap
    root.removeHandler(trap)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fuzz_hub(
    admin_dsn: str, template_name: str, tmp_path_factory: pytest.TempPathFactory,
    log_trap: LogTrap, outcomes: Counter[str],
) -> AsyncIterator[FuzzHub]:
    """A hub on a database of its own with accounts `fuzz-a` (the caller) and `fuzz-b`
    (someone else), each with a message, an inbound SMS, a webhook, an API token, a phone
    session and an idempotency key. The webhooks listen to `message.expired` only, which
    nothing here triggers: no delivery is ever attempted."""
    name = f"fz_{uuid.uuid4().hex[:16]}"
    dsn = await create_database(admin_dsn, name, template=template_name)
    data_dir = Path(tmp_path_factory.mktemp("fuzz")) / "data"
    app = create_app(test_settings(dsn, SMSNODES_DATABASE_DATA_DIR=str(data_dir), **FUZZ_ENV),
                     dsn, migrate=False)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        hooks = {"url": PUBLIC_HOOK, "events": ["message.expired"]}
        mine = await seed_account(client, "fuzz-a", webhook=hooks)
        theirs = await seed_account(client, "fuzz-b", webhook=hooks)
        hub = await FuzzHub.open(client, dsn, mine, theirs, log_trap, outcomes)
        log_trap.clear()  # the seeding's own log lines are not the fuzzer's business
        try:
            yield hub
        finally:
            await hub.close()
    finally:
        await client.close()
        await drop_database(admin_dsn, name)
