from __future__ import annotations

from pathlib import Path

import pytest

from tests.phone.fakes import FakeRadio


@pytest.fixture
def fake(tmp_path: Path) -> FakeRadio:
    """Fake termux-* and mmcli executables, and the world they share."""
    return FakeRadio(tmp_path / "fake")
