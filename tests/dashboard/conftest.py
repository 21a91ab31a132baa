"""Fixtures of the dashboard tests: conftest's hub, with the dashboard's key file in the
test's own folder (never in the repository's var/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.dashboard_support import HubFactory, key_file_in


@pytest.fixture
def make_hub(make_hub: HubFactory, tmp_path: Path) -> HubFactory:
    return key_file_in(make_hub, tmp_path)


@pytest.fixture
async def hub(make_hub: HubFactory) -> TestClient:
    return await make_hub()
