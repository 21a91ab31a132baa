"""The hub's close codes are the documented ones (docs/protocol.md), no more, no fewer.
How each is reached is tested through real sockets (test_delivery.py, test_device_auth.py)."""

from __future__ import annotations

import re

from smsnodes_hub.device.protocol import CloseCode
from tests.support import ROOT


def test_every_documented_close_code_is_a_close_code_and_back() -> None:
    table = (ROOT / "docs" / "protocol.md").read_text().split("Every close code", 1)[1]
    documented = {int(code) for code in re.findall(r"^\| (\d{4}) \|", table, re.MULTILINE)}
    assert documented == {int(code) for code in CloseCode}
