"""smsnodes-phone: a gateway agent that speaks device protocol v1 (PROTOCOL.md) to the hub.

It is a client built from the protocol alone, its own distribution (``phone/pyproject.toml``,
``smsnodes-phone``) needing only aiohttp and orjson, so it installs and runs where the hub's
server dependencies cannot (Termux's Python, a Raspberry Pi with a USB modem); the hub's
distribution ships the same package. The radio that really sends is pluggable: ``termux``
(Termux:API on Android), ``modem`` (ModemManager's mmcli) or ``sim`` (a simulator, for
trying the hub without a phone).
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
