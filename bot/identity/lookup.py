"""Customers by what identifies them. Call the ones that create inside a transaction.

A phone the shop names (an order, an appointment booked by staff, a technician's number) gets a customer
of its own if nobody wrote from it yet: what the shop sends then has a customer (its 24-hour window, its
pacing), and when that person writes, the message finds the same customer by the same phone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from bot.db.models import Customer, CustomerIdentity, IdentityKind
from bot.identity.addresses import is_phone


def kind_of(address: str) -> IdentityKind:
    return IdentityKind.PHONE if is_phone(address) else IdentityKind.BSUID


async def customer_by_address(address: str) -> Customer | None:
    """The customer this phone or BSUID belongs to (an old one too: identities are kept), or None."""
    value = address.lstrip("+")
    identity = await CustomerIdentity.get_or_none(kind=kind_of(value), value=value)
    if identity is not None:
        return await Customer.get_or_none(id=identity.customer_id)
    if is_phone(value):  # a customer row made outside bot/identity (a test, an old tool)
        return await Customer.get_or_none(wa_id=value)
    return await Customer.get_or_none(bsuid=value)


async def customer_for_phone(phone: str, now: datetime) -> Customer:
    """The customer with this phone, made (with its phone identity) when there is none yet."""
    return (await customers_for_phones([phone], now))[phone.lstrip("+")]


async def customers_for_phones(phones: Iterable[str], now: datetime) -> dict[str, Customer]:
    """Phone (digits) -> its customer, made for the phones nobody has yet: a few statements for any
    number of phones (an order import)."""
    wanted = list(dict.fromkeys(phone.lstrip("+") for phone in phones))
    if not wanted:
        return {}
    owners = dict(
        await CustomerIdentity.filter(kind=IdentityKind.PHONE, value__in=wanted).values_list(
            "value", "customer_id"
        )
    )
    missing = [phone for phone in wanted if phone not in owners]
    if missing:
        current = {c.wa_id: c.id for c in await Customer.filter(wa_id__in=missing)}
        new = [phone for phone in missing if phone not in current]
        if new:
            await Customer.bulk_create([Customer(wa_id=phone) for phone in new], ignore_conflicts=True)
            current.update({c.wa_id: c.id for c in await Customer.filter(wa_id__in=new).only("id", "wa_id")})
        await CustomerIdentity.bulk_create(
            [
                CustomerIdentity(
                    customer_id=current[phone],
                    kind=IdentityKind.PHONE,
                    value=phone,
                    first_seen_at=now,
                    last_seen_at=now,
                )
                for phone in missing
            ],
            ignore_conflicts=True,
        )
        owners.update(
            await CustomerIdentity.filter(kind=IdentityKind.PHONE, value__in=missing).values_list(
                "value", "customer_id"
            )
        )
    customers = {c.id: c for c in await Customer.filter(id__in=set(owners.values()))}
    return {phone: customers[owners[phone]] for phone in wanted}


async def customer_for_address(address: str, now: datetime) -> Customer:
    """The customer of this phone or BSUID, made (with its identity) when there is none yet."""
    if is_phone(address):
        return await customer_for_phone(address, now)
    found = await customer_by_address(address)
    if found is not None:
        return found
    customer = await Customer.create(bsuid=address)
    await CustomerIdentity.bulk_create(
        [
            CustomerIdentity(
                customer_id=customer.id,
                kind=IdentityKind.BSUID,
                value=address,
                first_seen_at=now,
                last_seen_at=now,
            )
        ],
        ignore_conflicts=True,
    )
    return customer
