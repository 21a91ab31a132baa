"""Phone numbers: what a caller writes, read with Google's libphonenumber (`phonenumbers`)
and stored in E.164; what a phone reports, cleaned to the contract's shape.

The contract (HTTP-API.md) accepts `+` and 6 to 15 digits, or a short code of 3 to 8
digits, and the seed's own examples (`+1234567890`, `+0987654321`) are numbers that
libphonenumber calls impossible. So the library decides what it knows (national formats
with `messaging.default_region`, a trunk `0` written after the country code, E.164 out),
and an international number it does not know is still accepted in the contract's shape:
the phone network, not the hub, is the judge of those."""

from __future__ import annotations

import re

import orjson
import phonenumbers

from smsnodes_hub.errors import InvalidRequest

_SEPARATORS = str.maketrans("", "", " -.()\t")
# fullmatch, not match with `$`: `$` also matches before a final "\n".
_INTERNATIONAL = re.compile(r"\+[0-9]{6,15}")
_SHORT_CODE = re.compile(r"[0-9]{3,8}")
_DIGITS = re.compile(r"\+?[0-9]+")  # after the separators: nothing but digits may be left
MAX_RECIPIENTS = 100
_SHOWN_MAX = 40
REGION_SETTING = "messaging.default_region"


class InvalidNumber(InvalidRequest, ValueError):
    """A recipient (or list of them) that is refused; the message names the entry."""


def _shown(value: object) -> str:
    """The offending entry for an error message, as JSON and cut short: the caller controls
    its size."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= _SHOWN_MAX else text[:_SHOWN_MAX] + "..."


def _refused(field: str, raw: object, region: str | None) -> InvalidNumber:
    if region:
        return InvalidNumber(
            f"{field}: invalid phone number {_shown(raw)}: use a number of region {region} "
            f"({REGION_SETTING}), + and the country code (6 to 15 digits), or a short code "
            "of 3 to 8 digits"
        )
    return InvalidNumber(
        f"{field}: invalid phone number {_shown(raw)}: use + and the country code (6 to 15 "
        f"digits), or a short code of 3 to 8 digits; for national numbers such as "
        f"0612345678 set {REGION_SETTING}"
    )


def _library(raw: str, region: str | None) -> str | None:
    """E.164 when libphonenumber knows the number as valid (read in `region` when it has no
    `+`), else None."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number) or number.extension:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def recipient(raw: object, field: str = "phoneNumbers", region: str | None = None) -> str:
    """A number a caller wrote, as the hub stores and sends it: E.164 when libphonenumber
    knows it (a number without `+` is read as a national number of `region`); else, as
    written less spaces, dashes, dots and parentheses, an international number in the
    contract's shape (`+`, 6-15 digits) or a short code (3-8 digits)."""
    if not isinstance(raw, str):
        raise InvalidNumber(f"{field}: must be a string, got {_shown(raw)}")
    cleaned = raw.translate(_SEPARATORS)
    if not _DIGITS.fullmatch(cleaned):  # letters, other symbols, nothing at all
        raise _refused(field, raw, region)
    if cleaned.startswith("+") or region:
        # The raw text, not the cleaned one: "+31 (0)6 ..." means +316..., not +3106...
        known = _library(raw, region)
        if known is not None:
            return known
    if _INTERNATIONAL.fullmatch(cleaned) or _SHORT_CODE.fullmatch(cleaned):
        return cleaned
    raise _refused(field, raw, region)


def normalize(raw: object, field: str = "phoneNumbers") -> str:
    """A number as a phone reports it (a status report's `to`, a received SMS's sender):
    spaces, dashes, dots and parentheses removed, then the contract's shape. The phone
    reports what the hub sent it, so this must give back what `recipient` stored, which it
    does (E.164 and short codes are their own cleaned form) without libphonenumber's cost
    on every report."""
    if not isinstance(raw, str):
        raise InvalidNumber(f"{field}: must be a string, got {_shown(raw)}")
    cleaned = raw.translate(_SEPARATORS)
    if not (_INTERNATIONAL.fullmatch(cleaned) or _SHORT_CODE.fullmatch(cleaned)):
        raise _refused(field, raw, None)
    return cleaned


def normalize_list(raw: object, region: str | None = None) -> list[str]:
    """Validate and de-duplicate (as stored), keeping the caller's order."""
    if not isinstance(raw, list) or not raw:
        raise InvalidNumber("phoneNumbers: must be a non-empty array of strings")
    if len(raw) > MAX_RECIPIENTS:
        raise InvalidNumber(f"phoneNumbers: at most {MAX_RECIPIENTS} recipients per message")
    # The error names the entry by position too: the same text may appear more than once.
    cleaned = (recipient(item, f"phoneNumbers[{i}]", region) for i, item in enumerate(raw))
    return list(dict.fromkeys(cleaned))
