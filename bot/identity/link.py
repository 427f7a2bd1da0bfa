"""Attach a phone or a BSUID to a customer: the one place that decides between moving and merging.

When the key already belongs to another customer row:
- `same_person` (WhatsApp says both keys are this user now: a phone and a BSUID on one message, or the
  user's own number shared from the "share my number" button) and the other row has no key of the other
  kind that contradicts it (a phone-only customer from before BSUIDs, or a BSUID-only one): the two rows
  are one person, merged (bot/identity/merge.py), history and all.
- otherwise (a new number after `user_changed_number` that someone else had, a phone whose old owner has
  a BSUID of their own: a recycled number) only the key moves. The old owner keeps their history; the
  shop's orders and appointments made for that phone follow it, as the shop's system addresses them.

Call inside a transaction. Returns the customer the key now belongs to (the one passed, saved).
"""

from __future__ import annotations

from datetime import datetime

from bot.db.models import Appointment, Customer, CustomerIdentity, IdentityKind, Order
from bot.db.reown import move_rows
from bot.identity.merge import merge_customers


async def link_phone(customer: Customer, phone: str, now: datetime, *, same_person: bool) -> Customer:
    """`phone` is the customer's current phone from now on."""
    phone = phone.lstrip("+")
    identity = await CustomerIdentity.get_or_none(kind=IdentityKind.PHONE, value=phone)
    holder = await Customer.get_or_none(wa_id=phone)
    other_id = identity.customer_id if identity is not None else (holder.id if holder else None)
    if other_id is not None and other_id != customer.id:
        other = holder if holder is not None and holder.id == other_id else await Customer.get(id=other_id)
        if same_person and (other.bsuid is None or other.bsuid == customer.bsuid):
            customer = await merge_customers(customer, other)
        else:
            await _move_phone(other, customer, phone)
    if holder is not None and holder.id not in (customer.id, other_id):
        holder.wa_id = None  # a row that still had it as current without the identity
        await holder.save(update_fields=["wa_id", "updated_at"])
    await _identity(customer, IdentityKind.PHONE, phone, now)
    if customer.wa_id != phone:
        customer.wa_id = phone
        await customer.save(update_fields=["wa_id", "updated_at"])
    return customer


async def link_bsuid(customer: Customer, bsuid: str, now: datetime, *, same_person: bool) -> Customer:
    """`bsuid` is the customer's current BSUID from now on."""
    identity = await CustomerIdentity.get_or_none(kind=IdentityKind.BSUID, value=bsuid)
    if identity is not None and identity.customer_id != customer.id:
        other = await Customer.get(id=identity.customer_id)
        if same_person and (other.wa_id is None or other.wa_id == customer.wa_id):
            customer = await merge_customers(customer, other)
        else:
            if other.bsuid == bsuid:
                other.bsuid = None
                await other.save(update_fields=["bsuid", "updated_at"])
            identity.customer_id = customer.id
            await identity.save(update_fields=["customer_id"])
    await _identity(customer, IdentityKind.BSUID, bsuid, now)
    if customer.bsuid != bsuid:
        customer.bsuid = bsuid
        await customer.save(update_fields=["bsuid", "updated_at"])
    return customer


async def link_other(customer: Customer, kind: IdentityKind, value: str, now: datetime) -> None:
    """A username or parent BSUID: it names whoever last showed it (a username can be given up and
    taken by someone else), so it moves, and never merges anyone."""
    updated = await CustomerIdentity.filter(kind=kind, value=value).update(
        customer_id=customer.id, last_seen_at=now
    )
    if not updated:
        await _identity(customer, kind, value, now)


async def _move_phone(old: Customer, new: Customer, phone: str) -> None:
    await CustomerIdentity.filter(kind=IdentityKind.PHONE, value=phone).update(customer_id=new.id)
    if old.wa_id == phone:
        old.wa_id = None
        await old.save(update_fields=["wa_id", "updated_at"])
    await move_rows(Order, new.id, customer_id=old.id, customer_phone=phone)
    await move_rows(Appointment, new.id, customer_id=old.id, customer_phone=phone)


async def _identity(customer: Customer, kind: IdentityKind, value: str, now: datetime) -> None:
    """The identity row, on this customer (made, or moved from nobody: it is unique)."""
    await CustomerIdentity.bulk_create(
        [
            CustomerIdentity(
                customer_id=customer.id, kind=kind, value=value, first_seen_at=now, last_seen_at=now
            )
        ],
        ignore_conflicts=True,
    )
    await CustomerIdentity.filter(kind=kind, value=value).update(customer_id=customer.id, last_seen_at=now)
