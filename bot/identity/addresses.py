"""An address is what a message goes to or comes from: a phone (wa_id, digits only) or a BSUID
(`CC.` followed by letters and digits, e.g. `US.13491208655302741918`), never both shapes at once."""

from __future__ import annotations

import re


def is_phone(address: str) -> bool:
    """A wa_id is digits only (a leading + allowed); a BSUID always has its country prefix and a dot."""
    return address.lstrip("+").isdigit()


def masked(address: str) -> str:
    """For logs at INFO and above: the last four characters only (of a phone or a BSUID)."""
    return f"***{address[-4:]}"


_BSUID = re.compile(r"^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$")
_PHONE_PUNCTUATION = frozenset("+ -().")
PHONE_DIGITS = range(6, 16)
"""How many digits a phone from outside may have (E.164 allows 15)."""


def parse_address(raw: str) -> str | None:
    """A phone or BSUID as a person or a shop's system writes it (`+34 600-111-222`, `US.1349…`), as the
    database keeps it (digits; the BSUID as is); None when it is neither."""
    text = raw.strip()
    if _BSUID.match(text):
        return text
    if not text or any(not ch.isdigit() and ch not in _PHONE_PUNCTUATION for ch in text):
        return None
    digits = "".join(ch for ch in text if ch.isdigit())
    return digits if len(digits) in PHONE_DIGITS and digits.isascii() else None
