"""The customer a request about their data names (erasure, export): by a phone or a BSUID, as the
technicians' and message-log APIs take them, and the two ways it can fail, each with its own answer."""

from __future__ import annotations

from bot.db.models import Customer, CustomerIdentity, IdentityKind
from bot.identity import customer_by_address
from bot.identity.addresses import is_phone, parse_address


class BadAddress(ValueError):
    """Neither a phone nor a BSUID: the request is wrong (400, exit 2)."""

    def __init__(self) -> None:
        super().__init__(
            "not a phone number (6 to 15 digits, e.g. +34 600 111 222) nor a WhatsApp user ID "
            "(e.g. US.13491208655302741918)"
        )


class UnknownCustomer(LookupError):
    """No customer has it (404, exit 1)."""

    def __init__(self, address: str) -> None:
        what = "phone number" if is_phone(address) else "WhatsApp user ID"
        super().__init__(f"no customer with this {what}")


async def find_subject(raw: str) -> Customer:
    """The customer of this phone or BSUID (an old one of theirs too: identities are kept)."""
    address = parse_address(raw)
    if address is None:
        raise BadAddress()
    customer = await customer_by_address(address)
    if customer is None:
        raise UnknownCustomer(address)
    return customer


async def addresses_of(customer: Customer) -> list[str]:
    """Every phone and BSUID the customer was known by: messages written without a customer, orders and
    appointments by phone, and the pacing buckets key on them."""
    values = await CustomerIdentity.filter(
        customer_id=customer.id, kind__in=[IdentityKind.PHONE, IdentityKind.BSUID]
    ).values_list("value", flat=True)
    known = [str(value) for value in values]
    known += [value for value in (customer.wa_id, customer.bsuid) if value]
    return list(dict.fromkeys(known))
