"""Two customer rows that turn out to be one person become one: everything of `gone` moves to `keep`.

It happens when WhatsApp tells us that two keys we knew apart belong to one user: a phone and a BSUID on
one message, or the user's own phone shared from the "share my number" button (bot/identity/link.py
decides when; a phone that belonged to someone with another BSUID is moved, never merged). Every table
that points at a customer moves with it, found from the models themselves (tables added later move too);
the conversation is one per customer, so when both have one, `keep`'s stays and what points at `gone`'s
(handoffs, notes, audit events) moves to it. Call inside a transaction.
"""

from __future__ import annotations

import logging

from tortoise.fields.relational import BackwardFKRelation, BackwardOneToOneRelation

from bot.db.models import Conversation, Customer
from bot.db.reown import reown

log = logging.getLogger(__name__)

_FIELDS = ("wa_id", "bsuid", "username", "profile_name", "language", "opted_out_at", "marketing_opted_out_at")
"""Filled in on `keep` from `gone` where `keep` has none (an opt-out of either holds for both)."""


async def merge_customers(keep: Customer, gone: Customer) -> Customer:
    """Move everything of `gone` to `keep`, then delete `gone`; returns `keep` (saved)."""
    if keep.id == gone.id:
        return keep
    keep_chat = await Conversation.get_or_none(customer_id=keep.id)
    gone_chat = await Conversation.get_or_none(customer_id=gone.id)
    if gone_chat is not None and keep_chat is not None:
        await _move_references(Conversation, gone_chat.id, keep_chat.id, skip_one_to_one=True)
        await gone_chat.delete()  # its timer goes with it: `keep`'s conversation is the live one
    await reown(gone.id, keep.id)  # their rows with encrypted values, sealed anew for `keep`
    await _move_references(Customer, gone.id, keep.id)
    for name in _FIELDS:
        if getattr(keep, name) is None and getattr(gone, name) is not None:
            setattr(keep, name, getattr(gone, name))
    if gone.last_inbound_at and (keep.last_inbound_at is None or gone.last_inbound_at > keep.last_inbound_at):
        keep.last_inbound_at = gone.last_inbound_at
    await gone.delete()  # first: its phone is unique
    await keep.save()
    log.info("customer %d merged into customer %d", gone.id, keep.id)
    return keep


async def _move_references(
    model: type[Customer] | type[Conversation], old: int, new: int, *, skip_one_to_one: bool = False
) -> None:
    """Point every row that references `model` row `old` at `new` instead."""
    for relation in model._meta.fields_map.values():
        if isinstance(relation, BackwardOneToOneRelation):
            if skip_one_to_one:
                continue
            if await relation.related_model.filter(**{relation.relation_field: new}).exists():
                continue  # `new` has its own (the conversation: handled by merge_customers)
        elif not isinstance(relation, BackwardFKRelation):
            continue
        await relation.related_model.filter(**{relation.relation_field: old}).update(
            **{relation.relation_field: new}
        )
