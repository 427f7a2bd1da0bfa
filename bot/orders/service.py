"""Creating and changing orders: the order, its status history and the customer's notification are
written in ONE transaction, so a status change is never recorded without its message or the reverse.

The notification is a queued outbox row (with the order's id); the outbox worker sends it after the
commit, each customer's messages in the order they were queued. Setting the status an order already
has changes nothing and sends nothing. The API and the CSV import both come through here: the API one
order per transaction (`upsert`, `update`), the import many (`upsert_many`), since a transaction's
commit, not its rows, is what a spreadsheet of 20,000 orders waits for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tortoise.exceptions import IntegrityError

from bot.clock import Clock, utc_now
from bot.db.models import Customer, Message, Order, OrderSource, OrderStatusChange
from bot.db.transactions import atomic
from bot.identity import customer_for_phone, customers_for_phones
from bot.orders.notify import StatusNotifier
from bot.orders.schemas import OrderIn, OrderPatch
from bot.spine.outbox import enqueue, outbound_row


class UnknownStatus(ValueError):
    """A status that settings.yaml does not list (the API and the import check first; this is the net)."""


@dataclass(frozen=True)
class OrderChange:
    order: Order
    created: bool
    notification: str | None
    """The message type queued for the customer ("text", "template"), or None."""


@dataclass
class _Batch:
    """What `upsert_many` writes at the end of its transaction, in one statement per table."""

    customers: Mapping[str, Customer]
    """Every phone of the batch -> its customer (made for the phones nobody has: looked up once)."""
    history: list[OrderStatusChange] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)


class OrderService:
    def __init__(
        self,
        statuses: Sequence[str],
        notifier: StatusNotifier,
        on_queued: Callable[[], None] = lambda: None,
        clock: Clock = utc_now,
    ) -> None:
        if not statuses:
            raise ValueError("no order statuses configured")
        self.statuses = tuple(statuses)
        self._notifier = notifier
        self._on_queued = on_queued
        self._clock = clock

    @property
    def validation_context(self) -> dict[str, Any]:
        """For OrderIn/OrderPatch.model_validate(..., context=...): checks statuses against settings."""
        return {"statuses": self.statuses}

    async def upsert(self, data: OrderIn, source: OrderSource) -> OrderChange:
        """Create the order, or update the one with this number (only the fields `data` was given)."""
        try:
            change = await self._upsert(data, source)
        except IntegrityError:
            # another request created this order number between our read and our insert: update it
            change = await self._upsert(data, source)
        return self._queued(change)

    async def update(self, number: str, patch: OrderPatch, source: OrderSource) -> OrderChange | None:
        """Change an existing order; None when there is no order with this number."""
        values = {name: getattr(patch, name) for name in patch.model_fields_set}
        async with atomic():
            order = await Order.filter(order_number=number).select_for_update().first()
            if order is None:
                return None
            change = await self._apply(order, values, source, created=False)
        return self._queued(change)

    async def upsert_many(self, items: Sequence[OrderIn], source: OrderSource) -> list[OrderChange]:
        """Create or update every order of `items` in ONE transaction, in order (a number given twice is
        created, then updated). All or nothing: whatever the database raises is raised, and nothing of
        the batch is written; the caller may then try its rows one by one with `upsert`."""
        numbers = sorted({item.order_number for item in items})
        phones = sorted({item.customer_phone for item in items})
        changes: list[OrderChange] = []
        async with atomic():
            found = await Order.filter(order_number__in=numbers).select_for_update()
            orders = {order.order_number: order for order in found}
            batch = _Batch(dict(await customers_for_phones(phones, self._clock())))
            for item in items:
                order = orders.get(item.order_number)
                values = _given(item)
                if order is None:
                    if values.get("status") is None:
                        values["status"] = self.statuses[0]
                    order = Order(order_number=item.order_number)
                change = await self._apply(order, values, source, created=order.pk is None, batch=batch)
                orders[item.order_number] = change.order
                changes.append(change)
            await OrderStatusChange.bulk_create(batch.history)
            await Message.bulk_create(batch.messages)
        if any(change.notification for change in changes):
            self._on_queued()
        return changes

    async def get(self, number: str) -> Order | None:
        """The order with its history, oldest change first."""
        order = await Order.get_or_none(order_number=number)
        if order is not None:
            await order.fetch_related("history")
        return order

    async def _upsert(self, data: OrderIn, source: OrderSource) -> OrderChange:
        values = _given(data)
        async with atomic():
            order = await Order.filter(order_number=data.order_number).select_for_update().first()
            if order is not None:
                return await self._apply(order, values, source, created=False)
            if values.get("status") is None:
                values["status"] = self.statuses[0]  # a new order starts in the first configured status
            return await self._apply(Order(order_number=data.order_number), values, source, created=True)

    async def _apply(
        self,
        order: Order,
        values: dict[str, Any],
        source: OrderSource,
        *,
        created: bool,
        batch: _Batch | None = None,
    ) -> OrderChange:
        """Call inside the transaction: save the order; if its status moved, its history and message
        (written now, or collected in `batch` for one insert at the end of the batch's transaction)."""
        if values.get("status") is None:
            values.pop("status", None)
        elif values["status"] not in self.statuses:
            raise UnknownStatus(
                f"unknown status '{values['status']}'; the statuses are: {', '.join(self.statuses)}"
            )
        previous = None if created else order.status
        phone_before = None if created else order.customer_phone
        for name, value in values.items():
            setattr(order, name, value)
        if batch is not None and order.customer_phone in batch.customers:
            customer: Customer = batch.customers[order.customer_phone]
        elif order.customer_id is None or order.customer_phone != phone_before:
            customer = await customer_for_phone(order.customer_phone, self._clock())
        else:
            customer = await Customer.get(id=order.customer_id)
        if order.customer_id is None or order.customer_phone != phone_before:
            order.customer_id = customer.id  # the owner is whoever has the phone the shop gave
        await order.save()
        if order.status == previous:
            return OrderChange(order, created, None)
        now = self._clock()
        history = OrderStatusChange(
            order=order, from_status=previous, to_status=order.status, changed_at=now, source=source
        )
        message = self._notifier.message_for(order, customer, now)
        if batch is not None:
            batch.history.append(history)
            if message is not None:
                batch.messages.append(
                    outbound_row(customer, message, now=now, order_id=order.id, initiated=True)
                )
        else:
            await history.save()
            if message is not None:
                await enqueue(customer, message, now=now, order_id=order.id, initiated=True)
        return OrderChange(order, created, message.message_type if message else None)

    def _queued(self, change: OrderChange) -> OrderChange:
        if change.notification:
            self._on_queued()
        return change


def _given(data: OrderIn) -> dict[str, Any]:
    """The fields the request or row gave, but the number (which names the order)."""
    return {name: getattr(data, name) for name in data.model_fields_set if name != "order_number"}
