"""A real Chromium (Debian's /usr/bin/chromium) driven by Playwright, for the dashboard's
browser tests. Skipped, with the reason shown, where Chromium or Playwright is missing:
scripts/test says so in one line. CI (.ci/run) installs Chromium and sets
SMSNODES_REQUIRE_BROWSER=1, which turns that skip into a failure of every browser test: a
CI run can never pass without having run them.

A test module that needs no browser (it checks this gate) says so with
`NEEDS_BROWSER = False`."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
OUTPUT = ROOT / "test-output" / "browser"
CHROMIUM = os.environ.get("SMSNODES_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# No browser download ever: Playwright drives the system's Chromium, offline and quiet.
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _missing() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[test]')"
    if not Path(CHROMIUM).is_file():
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    return None


REQUIRE_ENV = "SMSNODES_REQUIRE_BROWSER"


def browser_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def _needs_browser(item: pytest.Item) -> bool:
    here = Path(__file__).parent
    module = getattr(item, "module", None)
    return Path(str(item.fspath)).is_relative_to(here) and getattr(
        module, "NEEDS_BROWSER", True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _missing()
    if reason is None or browser_required():
        return  # required: pytest_runtest_setup fails them instead
    skip = pytest.mark.skip(reason=f"browser tests skipped: {reason}")
    for item in items:
        if _needs_browser(item):
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture (no database is made for a test that cannot run).
    if not browser_required() or not _needs_browser(item):
        return
    reason = _missing()
    if reason is not None:
        pytest.fail(f"{REQUIRE_ENV} is set (as in CI), so the browser tests must run, but "
                    f"{reason}", pytrace=False)


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> Path:
    """test-output/browser/<test name>/ (git-ignored), emptied for each run."""
    folder = OUTPUT / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()
