"""The orders API on the real server: API-key auth, validation (422 naming the field), upsert with
history, GET/404, and status notifications sent through the (fake) Graph API in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.db.models import ApiKey, Customer, Direction, Message, Order
from bot.orders.keys import create_key, revoke_key
from tests.helpers import BotFactory, errors_of, eventually, graph_sends
from tests.orders_helpers import PHONE, TEMPLATES, order_json

Client = TestClient[web.Request, web.Application]


async def start(bot_client: BotFactory) -> tuple[Client, dict[str, str]]:
    client = await bot_client(TEMPLATES)
    key = await create_key("shop-pos")
    return client, {"Authorization": f"Bearer {key}"}


async def test_requests_without_a_live_key_are_refused(bot_client: BotFactory) -> None:
    client, auth = await start(bot_client)
    revoked = await create_key("old-pos")
    await revoke_key("old-pos")
    for headers in (
        {},
        {"Authorization": "Bearer rb_not-a-real-key"},
        {"Authorization": "Bearer something-else"},
        {"Authorization": auth["Authorization"].removeprefix("Bearer ")},
        {"Authorization": f"Bearer {revoked}"},
    ):
        for method, path in (
            ("POST", "/api/orders"),
            ("PATCH", "/api/orders/R-1"),
            ("GET", "/api/orders/R-1"),
        ):
            response = await client.request(method, path, json=order_json(), headers=headers)
            assert response.status == 401, (method, headers)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await Order.all().count() == 0
    assert (await ApiKey.get(name="shop-pos")).last_used_at is None
    response = await client.get("/api/orders/R-1", headers=auth)
    assert response.status == 404
    assert (await ApiKey.get(name="shop-pos")).last_used_at is not None


async def test_post_creates_201_then_updates_200_with_history(bot_client: BotFactory) -> None:
    client, auth = await start(bot_client)
    response = await client.post("/api/orders", json=order_json(), headers=auth)
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["customer_phone"] == PHONE  # "+1 (555) 000-1234" as WhatsApp's wa_id
    assert created["quoted_price"] == "129.00"
    assert created["notification"] == "template"  # the customer has never written: outside the window
    response = await client.post(
        "/api/orders",
        json=order_json(status="diagnosing", technician=None, quoted_price="99.5"),
        headers=auth,
    )
    assert response.status == 200, await response.text()
    updated = await response.json()
    assert updated["id"] == created["id"]
    assert (updated["status"], updated["technician"], updated["quoted_price"]) == (
        "diagnosing",
        None,
        "99.50",
    )
    assert [(h["from_status"], h["to_status"], h["source"]) for h in updated["history"]] == [
        (None, "received", "api"),
        ("received", "diagnosing", "api"),
    ]
    response = await client.get("/api/orders/R-1001", headers=auth)
    assert response.status == 200
    shown = await response.json()
    assert shown["status"] == "diagnosing" and len(shown["history"]) == 2
    assert "notification" in shown and shown["notification"] is None


async def test_post_without_status_starts_new_orders_at_the_first_status(bot_client: BotFactory) -> None:
    client, auth = await start(bot_client)
    response = await client.post("/api/orders", json=order_json(status=..., quoted_price=...), headers=auth)
    assert response.status == 201
    assert (await response.json())["status"] == "received"
    response = await client.post("/api/orders", json=order_json(status=..., problem="battery"), headers=auth)
    body = await response.json()
    assert (response.status, body["status"], body["problem"]) == (200, "received", "battery")


async def test_patch_changes_the_given_fields_and_unknown_orders_are_404(bot_client: BotFactory) -> None:
    client, auth = await start(bot_client)
    await client.post("/api/orders", json=order_json(), headers=auth)
    response = await client.patch("/api/orders/R-1001", json={"status": "in_progress"}, headers=auth)
    assert response.status == 200
    body = await response.json()
    assert (body["status"], body["technician"], body["customer_name"]) == ("in_progress", "Sam", "Ana")
    response = await client.patch("/api/orders/R-1001", json={"technician": None}, headers=auth)
    assert (await response.json())["technician"] is None
    response = await client.patch("/api/orders/R-9999", json={"status": "in_progress"}, headers=auth)
    assert response.status == 404
    assert (await client.get("/api/orders/R-9999", headers=auth)).status == 404


async def test_validation_errors_are_422_and_name_the_field(bot_client: BotFactory) -> None:
    client, auth = await start(bot_client)
    cases: list[tuple[str, str, dict[str, Any], str, str]] = [
        ("POST", "/api/orders", order_json(customer_name=...), "customer_name", "required"),
        ("POST", "/api/orders", order_json(customer_phone="call me"), "customer_phone", "not a phone number"),
        ("POST", "/api/orders", order_json(customer_phone="+1 555"), "customer_phone", "digits"),
        (
            "POST",
            "/api/orders",
            order_json(status="lost"),
            "status",
            "received, diagnosing, waiting_for_parts",
        ),
        ("POST", "/api/orders", order_json(quoted_price="cheap"), "quoted_price", "decimal"),
        ("POST", "/api/orders", order_json(quoted_price=-5), "quoted_price", "greater than or equal to 0"),
        ("POST", "/api/orders", order_json("R 1/2"), "order_number", "letters, digits"),
        ("POST", "/api/orders", order_json(colour="red"), "colour", "unknown field"),
        ("PATCH", "/api/orders/R-1001", {"status": "shipped"}, "status", "unknown status 'shipped'"),
        ("PATCH", "/api/orders/R-1001", {"customer_name": None}, "customer_name", "may not be null"),
    ]
    for method, path, body, field, words in cases:
        response = await client.request(method, path, json=body, headers=auth)
        assert response.status == 422, (field, await response.text())
        errors = errors_of(await response.json())
        assert field in errors, errors
        assert words in errors[field], errors
    response = await client.post("/api/orders", data=b"{not json", headers=auth)
    assert response.status == 400
    assert await Order.all().count() == 0


async def test_status_changes_reach_the_customer_in_order_once_each(
    bot_client: BotFactory, fake_graph: TestServer
) -> None:
    client, auth = await start(bot_client)
    await Customer.create(wa_id=PHONE, language="en", last_inbound_at=datetime.now(UTC) - timedelta(hours=1))
    await client.post("/api/orders", json=order_json(), headers=auth)
    for status in ("diagnosing", "diagnosing", "in_progress", "completed", "completed"):
        response = await client.patch("/api/orders/R-1001", json={"status": status}, headers=auth)
        assert response.status == 200

    async def all_sent() -> bool:  # by the fake API, and recorded by the outbox (a moment later)
        recorded = Message.filter(message_direction=Direction.OUTBOUND, whatsapp_message_id__isnull=False)
        return len(await graph_sends(fake_graph)) >= 4 and await recorded.count() >= 4

    await eventually(all_sent)
    rows = await Message.filter(message_direction=Direction.OUTBOUND).order_by("id")
    order = await Order.get(order_number="R-1001")
    assert len(rows) == 4
    assert all(row.order_id == order.id and row.message_type == "text" for row in rows)
    sends = await graph_sends(fake_graph)
    assert [send[1].lstrip("+") for send in sends] == [PHONE] * 4
    assert [send[4] for send in sends] == [row.whatsapp_message_id for row in rows]  # sent in queue order
