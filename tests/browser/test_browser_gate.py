"""The browser tests' gate: skipped with the reason when Chromium is missing, but failed
when SMSNODES_REQUIRE_BROWSER is set (as .ci/run does), so CI cannot pass without them.
Runs pytest itself on the browser tests, with a Chromium path that does not exist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.browser.conftest import REQUIRE_ENV, ROOT

NEEDS_BROWSER = False  # checks the gate; runs where Chromium is missing too
BROWSER_TESTS = Path(__file__).with_name("test_dashboard_browser.py")


def run_browser_tests(**env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != REQUIRE_ENV}
    environ["SMSNODES_CHROMIUM"] = str(ROOT / "no-such-chromium")
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(BROWSER_TESTS), "-q", "-rs", "-p",
         "no:cacheprovider"],
        cwd=ROOT, env={**environ, **env}, capture_output=True, text=True, timeout=120,
        check=False,
    )


def test_without_chromium_the_browser_tests_are_skipped_and_say_why() -> None:
    run = run_browser_tests()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "browser tests skipped: Chromium not found" in run.stdout
    assert " skipped" in run.stdout and "passed" not in run.stdout


def test_when_required_a_missing_chromium_fails_them() -> None:
    run = run_browser_tests(**{REQUIRE_ENV: "1"})
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"{REQUIRE_ENV} is set (as in CI), so the browser tests must run" in run.stdout
    assert "Chromium not found" in run.stdout
    assert "skipped" not in run.stdout and "error" in run.stdout
