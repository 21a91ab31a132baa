"""What a failed send is reported as: the ``error`` of a ``failed`` status (PROTOCOL.md 3).

The hub retries a recipient only when ``error`` is exactly one of Android's transient
SmsManager result names (the hub's docs/messages.md, "Transient errors"); any other text
ends the recipient ``failed`` for good. So a radio reports:

- a failure after which nothing can have been sent and that usually passes (no network, a
  busy SIM, the modem not ready yet) as one of the names below, exactly, and the tool's own
  words go to the agent's log (``SendResult.detail``): the protocol has no place for both;
- any other failure (a missing permission, a refusal that will not pass, a tool that timed
  out after the SMS may have gone out) with the tool's own text, which the hub shows as is:
  a retry must never risk a duplicate SMS on a guess.
"""

from __future__ import annotations

NO_SERVICE = "RESULT_ERROR_NO_SERVICE"
RADIO_OFF = "RESULT_ERROR_RADIO_OFF"
GENERIC_FAILURE = "RESULT_ERROR_GENERIC_FAILURE"
LIMIT_EXCEEDED = "RESULT_ERROR_LIMIT_EXCEEDED"
NETWORK_ERROR = "RESULT_NETWORK_ERROR"
RADIO_NOT_AVAILABLE = "RESULT_RADIO_NOT_AVAILABLE"
SIM_BUSY = "RESULT_RIL_SIM_BUSY"

#: every name the radios report; each one is a failure the hub retries
TRANSIENT = frozenset({
    NO_SERVICE, RADIO_OFF, GENERIC_FAILURE, LIMIT_EXCEEDED, NETWORK_ERROR,
    RADIO_NOT_AVAILABLE, SIM_BUSY,
})

MAX_ERROR = 200  # the hub refuses a status whose error is longer (and the report is lost)
