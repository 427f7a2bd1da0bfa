"""An address is what a message goes to or comes from: a phone (wa_id, digits only) or a BSUID
(`CC.` followed by letters and digits, e.g. `US.13491208655302741918`), never both shapes at once."""

from __future__ import annotations


def is_phone(address: str) -> bool:
    """A wa_id is digits only (a leading + allowed); a BSUID always has its country prefix and a dot."""
    return address.lstrip("+").isdigit()


def masked(address: str) -> str:
    """For logs at INFO and above: the last four characters only (of a phone or a BSUID)."""
    return f"***{address[-4:]}"
