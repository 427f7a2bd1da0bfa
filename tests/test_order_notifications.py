"""Order status notifications, through the OrderService on a real database: free text inside the
24-hour window, the approved template outside it, each in the customer's language, queued in the same
transaction as the change, never twice for one status, and in the order the changes happened."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.db.models import Customer, DeliveryStatus, Message, Order, OrderSource, OrderStatusChange
from bot.orders.schemas import OrderIn, OrderPatch
from bot.orders.service import OrderService, UnknownStatus
from tests.helpers import outbound_rows
from tests.orders_helpers import PHONE, SHOP, order_json, order_settings, started_service

JUST_INSIDE = timedelta(hours=23, minutes=59)
JUST_OUTSIDE = timedelta(hours=24, minutes=1)


@pytest.fixture
async def wakes() -> list[int]:
    return []


@pytest.fixture
async def orders(database_url: str, tmp_path: Path, wakes: list[int]) -> AsyncIterator[OrderService]:
    settings = order_settings(tmp_path, database_url, extra="shop:\n  default_language: en\n" + SHOP)
    async with started_service(settings, wakes) as service:
        yield service


async def customer(ago: timedelta | None, language: str | None = None) -> Customer:
    last = datetime.now(UTC) - ago if ago is not None else None
    return await Customer.create(wa_id=PHONE, language=language, last_inbound_at=last)


async def post(service: OrderService, number: str = "R-1001", status: str = "received") -> None:
    data = OrderIn.model_validate(order_json(number, status=status), context=service.validation_context)
    await service.upsert(data, OrderSource.API)


async def set_status(service: OrderService, status: str, number: str = "R-1001") -> None:
    change = await service.update(number, OrderPatch(status=status), OrderSource.API)
    assert change is not None


async def test_inside_the_window_the_status_text_goes_in_the_customers_language(
    orders: OrderService, wakes: list[int]
) -> None:
    await customer(JUST_INSIDE, language="es")
    await post(orders, status="ready_for_pickup")
    [row] = await outbound_rows()
    order = await Order.get(order_number="R-1001")
    assert row.message_type == "text"
    assert row.order_id == order.id
    assert row.address == PHONE
    assert row.delivery_status == DeliveryStatus.QUEUED
    assert row.payload is not None
    body = row.payload["body"]
    assert "R-1001" in body and "iPhone 13" in body
    assert "listo" in body and "9-17 entre semana" in body and "1 Test Street" in body
    assert wakes == [1]


async def test_outside_the_window_the_approved_template_carries_number_and_status(
    orders: OrderService,
) -> None:
    await customer(JUST_OUTSIDE, language="es")
    await post(orders, status="ready_for_pickup")
    [row] = await outbound_rows()
    assert row.message_type == "template"
    assert row.order_id == (await Order.get(order_number="R-1001")).id
    assert row.payload is not None
    assert row.payload["name"] == "order_status_update"
    assert row.payload["language"] == "es"
    assert row.payload["body_params"] == ["R-1001", "Listo para recoger"]


async def test_a_customer_who_never_wrote_gets_the_template_in_the_shops_language(
    orders: OrderService,
) -> None:
    await post(orders)
    [row] = await outbound_rows()
    assert row.payload is not None
    assert (row.payload["name"], row.payload["language"]) == ("order_status_update", "en")
    assert row.payload["body_params"] == ["R-1001", "Received"]


async def test_a_language_the_template_lacks_falls_back_to_the_shops_language(orders: OrderService) -> None:
    await customer(JUST_OUTSIDE, language="fr")
    await post(orders, status="completed")
    [row] = await outbound_rows()
    assert row.payload is not None
    assert row.payload["language"] == "en"
    assert row.payload["body_params"] == ["R-1001", "Repair complete"]


async def test_the_default_texts_say_what_the_issue_asks(orders: OrderService) -> None:
    await customer(JUST_INSIDE, language="en")
    await post(orders, status="received")
    for status in ("in_progress", "completed", "ready_for_pickup"):
        await set_status(orders, status)
    texts = [row.message_content or "" for row in await outbound_rows()]
    assert "received your repair order" in texts[0] and "assigning a technician" in texts[0]
    assert "being repaired" in texts[1] and "keep you updated" in texts[1]
    assert "repair" in texts[2] and "complete" in texts[2] and "collect" in texts[2]
    assert "ready" in texts[3] and "any time during our opening hours" in texts[3]


async def test_setting_the_same_status_twice_notifies_once(orders: OrderService, wakes: list[int]) -> None:
    await customer(JUST_INSIDE)
    await post(orders, status="in_progress")
    await post(orders, status="in_progress")  # the shop's system sends the whole order again
    await set_status(orders, "in_progress")
    assert len(await outbound_rows()) == 1
    assert await OrderStatusChange.all().count() == 1
    assert wakes == [1]


async def test_changes_in_a_row_are_queued_in_order(orders: OrderService) -> None:
    await customer(JUST_INSIDE)
    await post(orders, status="received")
    for status in ("diagnosing", "in_progress", "completed"):
        await set_status(orders, status)
    rows = await outbound_rows()
    assert len(rows) == 4
    assert [row.id for row in rows] == sorted(row.id for row in rows)
    for row, words in zip(rows, ["received", "diagnosed", "being repaired", "complete"], strict=True):
        assert words in (row.message_content or "")
    history = await OrderStatusChange.all().order_by("id").values_list("from_status", "to_status", "source")
    assert history == [
        (None, "received", "api"),
        ("received", "diagnosing", "api"),
        ("diagnosing", "in_progress", "api"),
        ("in_progress", "completed", "api"),
    ]


async def test_a_quiet_status_records_history_but_sends_nothing(orders: OrderService) -> None:
    await customer(JUST_INSIDE)
    await post(orders, status="ready_for_pickup")
    await set_status(orders, "picked_up")  # notify: false by default
    assert len(await outbound_rows()) == 1
    assert (await Order.get(order_number="R-1001")).status == "picked_up"
    assert await OrderStatusChange.filter(to_status="picked_up").count() == 1


async def test_other_changes_without_a_status_change_send_nothing(orders: OrderService) -> None:
    await post(orders)
    await orders.update("R-1001", OrderPatch(technician="Kim", quoted_price=None), OrderSource.API)
    order = await Order.get(order_number="R-1001")
    assert (order.technician, order.quoted_price) == ("Kim", None)
    assert len(await outbound_rows()) == 1


async def test_an_unknown_status_writes_nothing(orders: OrderService) -> None:
    data = OrderIn.model_validate(order_json(status="lost"))  # no context: the service is the net
    with pytest.raises(UnknownStatus):
        await orders.upsert(data, OrderSource.API)
    assert await Order.all().count() == 0
    assert await Message.all().count() == 0


async def test_a_status_configured_not_to_notify_sends_nothing(database_url: str, tmp_path: Path) -> None:
    names = ["received", "diagnosing", "waiting_for_parts", "in_progress", "completed"]
    names += ["ready_for_pickup", "picked_up", "cancelled"]
    statuses = "orders:\n  statuses:\n" + "".join(
        f"    - {{name: {name}, notify: {'false' if name == 'received' else 'true'}}}\n" for name in names
    )
    async with started_service(order_settings(tmp_path, database_url, statuses)) as service:
        await post(service, status="received")
        assert await Message.all().count() == 0
        await set_status(service, "diagnosing")
        assert await Message.all().count() == 1
