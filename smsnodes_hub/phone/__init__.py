"""smsnodes-phone: a gateway agent that speaks device protocol v1 (PROTOCOL.md) to the hub.

It is a client built from the protocol alone and imports nothing of the hub's server
modules, so it installs and runs on its own (Termux's Python, a Raspberry Pi with a USB
modem). The radio that really sends is pluggable: ``termux`` (Termux:API on Android),
``modem`` (ModemManager's mmcli) or ``sim`` (a simulator, for trying the hub without a
phone).
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
