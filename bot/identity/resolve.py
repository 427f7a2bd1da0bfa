"""The customer of every inbound message, decided where it is stored (the intake's transaction).

One query finds every identity the batch names. A message whose keys all point at one customer costs
nothing more (the usual case); `last_seen_at` is written when it is an hour or more behind. Anything else
goes through bot/identity/link.py, one message at a time and in order:
- a new sender: a customer with the phone and the BSUID the message carries;
- a phone and a BSUID on one message that we knew apart: joined (link.py says how);
- `user_changed_number`: the new phone and the new BSUID become the sender's, old ones stay on record;
- `user_changed_user_id`: the new BSUID becomes the sender's (found by the previous one);
- the reply to "share my number" (a contacts message whose card has origin contact_request): the phone
  in it is the sender's own, verified by WhatsApp, and becomes theirs;
- a username or a parent BSUID not seen on this customer: recorded (moved from whoever had it).

On PostgreSQL another process may make the same new customer at the same moment: the identity rows are
unique, so one of them wins and the other's message joins the winner (its empty customer row is
removed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.expressions import Q

from bot.db import sql
from bot.db.models import Customer, CustomerIdentity, IdentityKind
from bot.identity.link import link_bsuid, link_other, link_phone
from bot.whatsapp.notifications import (
    USER_CHANGED_NUMBER,
    USER_CHANGED_USER_ID,
    InboundItem,
    SenderIds,
)

SEEN_EVERY = timedelta(hours=1)
"""How far behind an identity's last_seen_at may be before a message writes it again."""

Key = tuple[IdentityKind, str]


@dataclass(frozen=True)
class _Facts:
    """What one message says about identities: who sent it, and what changed."""

    lookup: tuple[Key, ...]
    """The keys that find the sender, strongest first."""
    phone: str | None
    bsuid: str | None
    others: tuple[Key, ...]
    same_person: bool
    """The phone and the BSUID are attested as one user's (one message, or a shared own number)."""


def _facts(item: InboundItem) -> _Facts:
    sender: SenderIds = item.sender_ids
    message = item.message
    phone, bsuid = sender.phone, sender.bsuid
    lookup: list[Key] = []
    system = message.system if message.kind == "system" else None
    if system is not None and system.type in (USER_CHANGED_NUMBER, USER_CHANGED_USER_ID):
        if system.previous_user_id:
            lookup.append((IdentityKind.BSUID, system.previous_user_id))
        if sender.bsuid:
            lookup.append((IdentityKind.BSUID, sender.bsuid))
        if sender.phone:
            lookup.append((IdentityKind.PHONE, sender.phone))
        if system.type == USER_CHANGED_NUMBER and system.wa_id:
            phone = system.wa_id
        bsuid = system.user_id or (None if system.previous_user_id else sender.bsuid)
        if system.type == USER_CHANGED_USER_ID:
            phone = None  # it reports only the BSUID
        return _Facts(tuple(lookup), phone, bsuid, _others(sender), same_person=False)
    if sender.bsuid:
        lookup.append((IdentityKind.BSUID, sender.bsuid))
    if sender.phone:
        lookup.append((IdentityKind.PHONE, sender.phone))
    shared = message.shared_phone
    if shared is not None:
        phone = shared
    return _Facts(tuple(lookup), phone, bsuid, _others(sender), same_person=True)


def _others(sender: SenderIds) -> tuple[Key, ...]:
    keys: list[Key] = []
    if sender.parent_bsuid:
        keys.append((IdentityKind.PARENT_BSUID, sender.parent_bsuid))
    if sender.username:
        keys.append((IdentityKind.USERNAME, sender.username))
    return tuple(keys)


async def resolve_senders(items: Sequence[InboundItem], now: datetime) -> list[int]:
    """The customer id of each item's sender, in order. Call inside the transaction that stores them."""
    if not items:
        return []
    facts = [_facts(item) for item in items]
    wanted: set[Key] = set()
    for fact in facts:
        wanted.update(fact.lookup)
        wanted.update(fact.others)
        if fact.phone:
            wanted.add((IdentityKind.PHONE, fact.phone))
        if fact.bsuid:
            wanted.add((IdentityKind.BSUID, fact.bsuid))
    known = await _known(wanted, now)
    known.update(await _new_senders(facts, known, now))
    merged: dict[int, int] = {}
    resolved: list[int] = []
    for fact in facts:
        customer_id = _fast(fact, known)
        if customer_id is None:
            customer_id = await _slow(fact, known, merged, now)
        resolved.append(customer_id)
    return [_final(customer_id, merged) for customer_id in resolved]


def _keys(fact: _Facts) -> frozenset[Key]:
    """Every identity a message names: its sender's lookup keys, current phone and BSUID, and the rest."""
    keys = set(fact.lookup) | set(fact.others)
    if fact.phone:
        keys.add((IdentityKind.PHONE, fact.phone))
    if fact.bsuid:
        keys.add((IdentityKind.BSUID, fact.bsuid))
    return frozenset(keys)


async def _new_senders(facts: Sequence[_Facts], known: dict[Key, int], now: datetime) -> dict[Key, int]:
    """Senders nobody knows yet, written at once (a few statements for the whole batch, not a few per
    sender): a customer each, with their identities. Only plain first messages: one whose keys another
    message of the batch names differently, a system message, or a shared number goes the slow way
    (`_slow`), as does a sender another process made meanwhile (PostgreSQL: the identity rows say whose).
    Returns the keys now known."""
    groups: dict[frozenset[Key], _Facts] = {}
    claimed: dict[Key, frozenset[Key]] = {}
    mixed: set[frozenset[Key]] = set()
    for fact in facts:
        keys = _keys(fact)
        if not fact.same_person or any(key in known for key in keys) or fact.phone != _phone_of(fact):
            continue
        for key in keys:
            other = claimed.setdefault(key, keys)
            if other != keys:
                mixed.update((other, keys))
        groups.setdefault(keys, fact)
    fresh = {keys: fact for keys, fact in groups.items() if keys not in mixed}
    if not fresh:
        return {}
    await Customer.bulk_create(
        [Customer(wa_id=_phone_of(fact), bsuid=fact.bsuid) for fact in fresh.values()], ignore_conflicts=True
    )
    phones = [phone for fact in fresh.values() if (phone := _phone_of(fact))]
    bsuids = [fact.bsuid for fact in fresh.values() if fact.bsuid and not _phone_of(fact)]
    made: dict[Key, int] = {}
    for customer in await Customer.filter(Q(wa_id__in=phones) | Q(bsuid__in=bsuids, wa_id=None)).only(
        "id", "wa_id", "bsuid"
    ):
        if customer.wa_id:
            made[(IdentityKind.PHONE, customer.wa_id)] = customer.id
        elif customer.bsuid:
            made.setdefault((IdentityKind.BSUID, customer.bsuid), customer.id)
    owners: dict[frozenset[Key], int] = {}
    for keys, fact in fresh.items():
        phone = _phone_of(fact)
        main: Key = (IdentityKind.PHONE, phone) if phone else (IdentityKind.BSUID, fact.bsuid or "")
        if main in made:
            owners[keys] = made[main]
    await CustomerIdentity.bulk_create(
        [
            CustomerIdentity(customer_id=owner, kind=kind, value=value, first_seen_at=now, last_seen_at=now)
            for keys, owner in owners.items()
            for kind, value in keys
        ],
        ignore_conflicts=True,
    )
    wanted = {key for keys in owners for key in keys}
    rows = await CustomerIdentity.filter(
        kind__in=list({kind for kind, _ in wanted}), value__in=list({value for _, value in wanted})
    ).values_list("kind", "value", "customer_id")
    recorded = {(IdentityKind(kind), str(value)): int(owner) for kind, value, owner in rows}
    now_known: dict[Key, int] = {}
    for keys, owner in owners.items():
        if all(recorded.get(key) == owner for key in keys):  # else: another process won; _slow sorts it
            now_known.update(dict.fromkeys(keys, owner))
    return now_known


def _phone_of(fact: _Facts) -> str | None:
    """The phone a plain message's sender has (a message whose phone is not its sender's: none)."""
    return next((value for kind, value in fact.lookup if kind == IdentityKind.PHONE), None)


_KNOWN = (
    'SELECT "id", "kind", "value", "customer_id", "last_seen_at" IS NULL OR "last_seen_at" <= ?'
    ' FROM "customer_identity" WHERE "kind" IN ({0}) AND "value" IN ({1})'
)
"""The identities of a webhook batch's senders, and whether each was last seen `SEEN_EVERY` or longer
ago (the database compares; no datetime is read back): hand-written (bot/db/sql.py), as the intake
asks it at every commit and Tortoise built the query each time."""


async def _known(keys: set[Key], now: datetime) -> dict[Key, int]:
    """Key -> customer id for the keys on record; writes last_seen_at where it is far behind."""
    if not keys:
        return {}
    kinds = sorted({kind.value for kind, _ in keys})
    values = sorted({value for _, value in keys})
    rows = await sql.fetch_rows(
        _KNOWN.format(sql.marks(len(kinds)), sql.marks(len(values))), [now - SEEN_EVERY, *kinds, *values]
    )
    known: dict[Key, int] = {}
    stale = []
    for identity_id, kind, value, customer_id, seen_long_ago in rows:
        key = (IdentityKind(kind), str(value))
        if key in keys:
            known[key] = int(customer_id)
            if seen_long_ago:
                stale.append(identity_id)
    if stale:
        await CustomerIdentity.filter(id__in=stale).update(last_seen_at=now)
    unknown = [key for key in keys if key not in known and key[0] in _CURRENT]
    if unknown:
        known.update(await _adopted(unknown, now))
    return known


_CURRENT = {IdentityKind.PHONE: "wa_id", IdentityKind.BSUID: "bsuid"}
"""The kinds a customer row also holds as its current value (Customer.wa_id, Customer.bsuid)."""


async def _adopted(keys: list[Key], now: datetime) -> dict[Key, int]:
    """Customers whose current phone or BSUID is one of `keys` but who have no identity row for it (made
    by hand, or by a tool that wrote the row alone): their identity rows are made now."""
    phones = [value for kind, value in keys if kind == IdentityKind.PHONE]
    bsuids = [value for kind, value in keys if kind == IdentityKind.BSUID]
    found: dict[Key, int] = {}
    for customer in await Customer.filter(Q(wa_id__in=phones) | Q(bsuid__in=bsuids)).only(
        "id", "wa_id", "bsuid"
    ):
        for kind, column in _CURRENT.items():
            value = getattr(customer, column)
            if value is not None and (kind, value) in keys:
                found[(kind, value)] = customer.id
    if found:
        await CustomerIdentity.bulk_create(
            [
                CustomerIdentity(
                    customer_id=owner, kind=kind, value=value, first_seen_at=now, last_seen_at=now
                )
                for (kind, value), owner in found.items()
            ],
            ignore_conflicts=True,
        )
    return found


def _fast(fact: _Facts, known: dict[Key, int]) -> int | None:
    """The customer when everything the message says is already so; None when something must change."""
    owners = {known.get(key) for key in fact.lookup}
    for kind, value in (
        (IdentityKind.PHONE, fact.phone),
        (IdentityKind.BSUID, fact.bsuid),
        *fact.others,
    ):
        if value is not None:
            owners.add(known.get((kind, value)))
    if len(owners) == 1 and None not in owners:
        return owners.pop()
    return None


async def _slow(fact: _Facts, known: dict[Key, int], merged: dict[int, int], now: datetime) -> int:
    customer = None
    for key in fact.lookup:
        if key in known:
            customer = await Customer.get_or_none(id=_final(known[key], merged))
            if customer is not None:
                break
    if customer is None:
        customer = await _new_customer(fact, now)
    before = customer.id
    if fact.bsuid:
        customer = await link_bsuid(customer, fact.bsuid, now, same_person=fact.same_person)
    if fact.phone:
        customer = await link_phone(customer, fact.phone, now, same_person=fact.same_person)
    for kind, value in fact.others:
        await link_other(customer, kind, value, now)
    for key in {*fact.lookup, *fact.others}:
        merged_into = known.get(key)
        if (
            merged_into is not None
            and merged_into != customer.id
            and not await Customer.exists(id=merged_into)
        ):
            merged[merged_into] = customer.id  # merged away by link_*: earlier messages follow
    if before != customer.id:
        merged[before] = customer.id
    now_known: list[tuple[IdentityKind, str | None]] = [
        (IdentityKind.PHONE, fact.phone),
        (IdentityKind.BSUID, fact.bsuid),
        *fact.others,
    ]
    for now_kind, now_value in now_known:
        if now_value is not None:
            known[(now_kind, now_value)] = customer.id
    return customer.id


async def _new_customer(fact: _Facts, now: datetime) -> Customer:
    """A customer for a sender nobody knows; if another process made theirs meanwhile (PostgreSQL), the
    identity rows say whose it is, and this one is dropped again."""
    customer = await Customer.create(wa_id=None, bsuid=None)
    keys = list(fact.lookup)
    await CustomerIdentity.bulk_create(
        [
            CustomerIdentity(
                customer_id=customer.id, kind=kind, value=value, first_seen_at=now, last_seen_at=now
            )
            for kind, value in keys
        ],
        ignore_conflicts=True,
    )
    rows = await CustomerIdentity.filter(
        kind__in=[kind for kind, _ in keys], value__in=[value for _, value in keys]
    ).values_list("kind", "value", "customer_id")
    owners = {int(owner) for kind, value, owner in rows if (IdentityKind(kind), value) in keys}
    if owners and customer.id not in owners:
        await customer.delete()
        found = await Customer.get_or_none(id=min(owners))
        if found is not None:
            return found
        customer = await Customer.create(wa_id=None, bsuid=None)
    return customer


def _final(customer_id: int, merged: dict[int, int]) -> int:
    while customer_id in merged:
        customer_id = merged[customer_id]
    return customer_id
