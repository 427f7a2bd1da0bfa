"""Whose orders are whose: the one query every reader of "this customer's orders" uses.

An order belongs to its `customer` (set when the order is written: bot/orders/service.py). An order
written another way (a flow test's seed, a release before customers had ids whose phone had no
customer yet) has none; it is the order of whoever has its phone now. Nobody else's, ever: a customer
without a phone sees only the orders that are theirs by id.
"""

from __future__ import annotations

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from bot.db.models import Order


def orders_of(customer_id: int | None, phone: str | None) -> QuerySet[Order]:
    """The orders of the customer with this id and current phone (None: they have none)."""
    mine = Q(customer_id=customer_id) if customer_id is not None else Q(id=-1)
    if phone:
        mine |= Q(customer_id=None, customer_phone=phone)
    return Order.filter(mine)
