"""Staff moving or cancelling an appointment over the API tell the customer, like order notifications:
free text inside the 24-hour window, the approved `appointment_update` template outside it, in the
customer's language, queued with the change; `"notify": false` says nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.db.models import AppointmentChange, Customer, DeliveryStatus, Message
from bot.orders.keys import create_key
from tests.helpers import REPO, BotFactory, eventually, graph_sends, outbound_rows

Client = TestClient[web.Request, web.Application]
PHONE = "15550001234"
# the test server's shop is in Madrid (+01:00 in January); 2030-01-07 is a Monday
SETTINGS = f"""
templates:
  directory: {REPO / "templates"}
appointments:
  capacity: 1
  opening_hours: {{mon: ["09:00-13:00"], tue: ["09:00-13:00"]}}
  reminders: ["24h"]
  quiet_hours: null
"""
TEN = "2030-01-07T10:00:00+01:00"
ELEVEN = "2030-01-07T11:00:00+01:00"


async def booked(bot_client: BotFactory, starts_at: str = TEN) -> tuple[Client, dict[str, str], int]:
    client = await bot_client(SETTINGS)
    auth = {"Authorization": f"Bearer {await create_key('shop-pos')}"}
    body = {
        "customer_phone": PHONE,
        "customer_name": "Ana",
        "starts_at": starts_at,
        "device_model": "iPhone 13",
    }
    response = await client.post("/api/appointments", json=body, headers=auth)
    assert response.status == 201, await response.text()
    return client, auth, (await response.json())["id"]


async def wrote(ago: timedelta, language: str | None = None) -> None:
    """The customer the booking made for the phone wrote `ago`."""
    updated = await Customer.filter(wa_id=PHONE).update(
        language=language, last_inbound_at=datetime.now(UTC) - ago
    )
    assert updated == 1


async def patch(client: Client, auth: dict[str, str], appointment: int, **body: Any) -> dict[str, Any]:
    response = await client.patch(f"/api/appointments/{appointment}", json=body, headers=auth)
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def test_a_move_inside_the_window_is_a_text_in_the_customers_language(bot_client: BotFactory) -> None:
    client, auth, appointment = await booked(bot_client)
    await wrote(timedelta(hours=3), language="es")

    answer = await patch(client, auth, appointment, starts_at=ELEVEN)

    assert answer["notification"] == "text"
    [row] = await outbound_rows()
    assert row.message_type == "text" and row.address == PHONE
    assert row.payload is not None
    assert row.payload["body"] == (
        "Hemos cambiado tu cita de reparación para iPhone 13 al lun 7 ene, 11:00. ¡Te esperamos en "
        '1 Test Street! Si no te viene bien, escribe "cita" para cambiarla.'
    )


async def test_a_move_outside_the_window_is_the_approved_template(bot_client: BotFactory) -> None:
    client, auth, appointment = await booked(bot_client)
    await wrote(timedelta(hours=24, minutes=1))

    answer = await patch(client, auth, appointment, starts_at=ELEVEN)

    assert answer["notification"] == "template"
    [row] = await outbound_rows()
    assert row.message_type == "template" and row.payload is not None
    assert row.payload["name"] == "appointment_update"
    assert row.payload["language"] == "en"
    assert row.payload["body_params"] == ["iPhone 13", "now on Mon 7 Jan, 11:00 AM"]


async def test_a_customer_who_never_wrote_gets_the_template_in_the_shops_language(
    bot_client: BotFactory,
) -> None:
    client, auth, appointment = await booked(bot_client)
    answer = await patch(client, auth, appointment, status="cancelled")
    assert answer["notification"] == "template"
    [row] = await outbound_rows()
    assert row.payload is not None
    assert (row.payload["language"], row.payload["body_params"]) == ("en", ["iPhone 13", "cancelled"])


async def test_a_cancellation_inside_the_window_says_when_and_how_to_book_again(
    bot_client: BotFactory,
) -> None:
    client, auth, appointment = await booked(bot_client)
    await wrote(timedelta(minutes=5))

    answer = await patch(client, auth, appointment, status="cancelled")

    assert (answer["status"], answer["notification"]) == ("cancelled", "text")
    [row] = await outbound_rows()
    assert row.payload is not None
    assert row.payload["body"] == (
        "Your repair appointment on Mon 7 Jan, 10:00 AM for iPhone 13 has been cancelled. "
        'Type "appointment" to book another time.'
    )
    again = await patch(client, auth, appointment, status="cancelled")
    assert (again["status"], again["notification"]) == ("cancelled", None)
    assert len(await outbound_rows()) == 1  # cancelling twice tells once


async def test_notify_false_changes_the_appointment_and_says_nothing(bot_client: BotFactory) -> None:
    client, auth, appointment = await booked(bot_client)
    await wrote(timedelta(hours=1))

    moved = await patch(client, auth, appointment, starts_at=ELEVEN, notify=False)
    cancelled = await patch(client, auth, appointment, status="cancelled", notify=False)

    assert (moved["starts_at"], moved["notification"]) == (ELEVEN, None)
    assert (cancelled["status"], cancelled["notification"]) == ("cancelled", None)
    assert await outbound_rows() == []
    assert await AppointmentChange.filter(appointment_id=appointment).count() == 3  # booked, moved, cancelled


async def test_other_staff_changes_say_nothing(bot_client: BotFactory) -> None:
    client, auth, appointment = await booked(bot_client)
    await wrote(timedelta(hours=1))
    for body in ({"notes": "bring the charger"}, {"status": "confirmed"}, {"starts_at": TEN}):
        assert (await patch(client, auth, appointment, **body))["notification"] is None, body
    assert await outbound_rows() == []


async def test_an_appointment_in_the_past_is_record_keeping_not_news(bot_client: BotFactory) -> None:
    client, auth, appointment = await booked(bot_client, starts_at="2020-01-06T10:00:00+01:00")
    await wrote(timedelta(hours=1))
    assert (await patch(client, auth, appointment, status="cancelled"))["notification"] is None
    assert await outbound_rows() == []


async def test_notify_must_be_true_or_false(bot_client: BotFactory) -> None:
    client, auth, appointment = await booked(bot_client)
    for bad in ("no", None, 0):
        response = await client.patch(
            f"/api/appointments/{appointment}", json={"status": "cancelled", "notify": bad}, headers=auth
        )
        assert response.status == 422, bad
        assert [e["field"] for e in (await response.json())["errors"]] == ["notify"]
    assert await outbound_rows() == []


async def test_the_notification_reaches_whatsapp(bot_client: BotFactory, fake_graph: TestServer) -> None:
    client, auth, appointment = await booked(bot_client)
    await patch(client, auth, appointment, starts_at=ELEVEN)

    async def sent() -> bool:
        return await Message.filter(delivery_status=DeliveryStatus.SENT).count() == 1

    await eventually(sent)
    assert [(to, kind) for _, to, kind, *_ in await graph_sends(fake_graph)] == [(f"+{PHONE}", "template")]
