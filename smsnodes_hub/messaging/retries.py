"""Which failures are worth another attempt (the backoff is applied in SQL, see
messages.advance_rounds).

A phone reports Android's SmsManager result names. Transient ones (no service, radio off,
a busy modem, the carrier's rate limit) usually pass; permanent ones (a malformed PDU, a
short code the SIM may not text, a fixed-dialling refusal) never do, and retrying them only
spends the owner's SMS. A failure with no code is taken as permanent: a retry must never
risk a duplicate on a guess."""

from __future__ import annotations

TRANSIENT_ERRORS = frozenset({
    "RESULT_ERROR_GENERIC_FAILURE",
    "RESULT_ERROR_NO_SERVICE",
    "RESULT_ERROR_RADIO_OFF",
    "RESULT_ERROR_LIMIT_EXCEEDED",
    "RESULT_NETWORK_ERROR",
    "RESULT_NETWORK_REJECT",
    "RESULT_MODEM_ERROR",
    "RESULT_NO_MEMORY",
    "RESULT_RADIO_NOT_AVAILABLE",
    "RESULT_SYSTEM_ERROR",
    "RESULT_SMS_SEND_RETRY_FAILED",
    "RESULT_RIL_NETWORK_ERR",
    "RESULT_RIL_NETWORK_NOT_READY",
    "RESULT_RIL_RADIO_NOT_AVAILABLE",
    "RESULT_RIL_SYSTEM_ERR",
    "RESULT_RIL_MODEM_ERR",
    "RESULT_RIL_NO_RESOURCES",
    "RESULT_RIL_SIM_BUSY",
})


def is_transient(error: str | None) -> bool:
    return error in TRANSIENT_ERRORS
