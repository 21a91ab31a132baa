"""Radios: what really sends an SMS, receives them and tells battery and signal.

``base`` holds the interface; ``termux`` drives Termux:API on Android, ``modem`` drives
ModemManager's mmcli, ``sim`` pretends (for trying the hub without a phone, and tests).
"""

from __future__ import annotations

from .base import DeliveryReport, InboundSms, Radio, RadioError, SendResult, Telemetry

__all__ = ["DeliveryReport", "InboundSms", "Radio", "RadioError", "SendResult", "Telemetry"]
