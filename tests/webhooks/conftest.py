"""The `receiver` fixture: a plain-HTTP receiver on 127.0.0.1 (tests/webhooks/receiver.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.webhooks.receiver import Receiver, serve_receiver


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    return await serve_receiver(aiohttp_server)
