"""The appointments API on the real server: API-key auth, validation (422 naming the field), 409 for a
full slot, staff changes with history, chat changes visible to staff, cancellation freeing the slot."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.db.models import Appointment, AppointmentSeat
from bot.http.appointments import APPOINTMENTS
from bot.orders.keys import create_key, revoke_key
from tests.helpers import BotFactory, errors_of

Client = TestClient[web.Request, web.Application]
PHONE = "15550001234"
# the test server's shop is in Madrid (+01:00 in January); 2030-01-07 is a Monday, far from the real clock
RULES = """
appointments:
  capacity: 1
  opening_hours: {mon: ["09:00-13:00"], tue: ["09:00-13:00"]}
  reminders: ["24h", "2h"]
  quiet_hours: null
"""
TEN = "2030-01-07T10:00:00+01:00"


async def start(bot_client: BotFactory) -> tuple[Client, dict[str, str]]:
    client = await bot_client(RULES)
    key = await create_key("shop-pos")
    return client, {"Authorization": f"Bearer {key}"}


def appointment_json(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer_phone": "+1 (555) 000-1234",
        "customer_name": "Ana",
        "starts_at": TEN,
        "device_model": "iPhone 13",
        "notes": "cracked screen",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not ...}


async def test_requests_without_a_live_key_are_refused(bot_client: BotFactory) -> None:
    client, _ = await start(bot_client)
    revoked = await create_key("old-pos")
    await revoke_key("old-pos")
    for headers in ({}, {"Authorization": "Bearer rb_nope"}, {"Authorization": f"Bearer {revoked}"}):
        for method, path in (
            ("POST", "/api/appointments"),
            ("GET", "/api/appointments"),
            ("GET", "/api/appointments/1"),
            ("PATCH", "/api/appointments/1"),
        ):
            response = await client.request(method, path, json=appointment_json(), headers=headers)
            assert response.status == 401, (method, path, headers)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await Appointment.all().count() == 0


async def test_post_books_with_reminders_and_history(bot_client: BotFactory) -> None:
    client, auth = await start(bot_client)
    response = await client.post("/api/appointments", json=appointment_json(), headers=auth)
    assert response.status == 201, await response.text()
    booked = await response.json()
    assert (booked["customer_phone"], booked["status"], booked["duration_minutes"]) == (PHONE, "booked", 30)
    assert (booked["starts_at"], booked["ends_at"]) == (TEN, "2030-01-07T10:30:00+01:00")
    assert [(r["offset_minutes"], r["status"]) for r in booked["reminders"]] == [
        (1440, "pending"),
        (120, "pending"),
    ]
    assert [(h["from_status"], h["to_status"], h["source"]) for h in booked["history"]] == [
        (None, "booked", "api")
    ]
    response = await client.get(f"/api/appointments/{booked['id']}", headers=auth)
    assert response.status == 200 and (await response.json())["notes"] == "cracked screen"
    assert (await client.get("/api/appointments/999", headers=auth)).status == 404
    assert (await client.get("/api/appointments/abc", headers=auth)).status == 404


async def test_invalid_bodies_get_422_naming_the_field(bot_client: BotFactory) -> None:
    client, auth = await start(bot_client)
    cases: list[tuple[dict[str, Any], str, str]] = [
        (appointment_json(starts_at=...), "starts_at", "required"),
        (appointment_json(starts_at="2030-01-07T10:00:00"), "starts_at", "with its offset"),
        (appointment_json(starts_at="next monday"), "starts_at", "datetime"),
        (appointment_json(customer_phone="call me"), "customer_phone", "not a phone number"),
        (appointment_json(status="completed"), "status", "booked or confirmed"),
        (appointment_json(duration_minutes=1), "duration_minutes", "greater than or equal to 5"),
        (appointment_json(colour="red"), "colour", "unknown field; the fields are: customer_phone"),
        (appointment_json(starts_at="2030-01-07T10:10:00+01:00"), "starts_at", "not the start of a slot"),
        (appointment_json(starts_at="2030-01-09T10:00:00+01:00"), "starts_at", "not the start of a slot"),
    ]
    for body, field, message in cases:
        response = await client.post("/api/appointments", json=body, headers=auth)
        assert response.status == 422, (body, await response.text())
        errors = errors_of(await response.json())
        assert message in errors[field], (field, errors)
    response = await client.post("/api/appointments", data=b"{not json", headers=auth)
    assert response.status == 400
    response = await client.get("/api/appointments?from=soon", headers=auth)
    assert response.status == 422 and "from" in errors_of(await response.json())
    assert await Appointment.all().count() == 0


async def test_a_full_slot_is_409_and_cancelling_frees_it(bot_client: BotFactory) -> None:
    client, auth = await start(bot_client)
    first = await (await client.post("/api/appointments", json=appointment_json(), headers=auth)).json()
    other = appointment_json(customer_phone="15550005678", customer_name="Bo")
    response = await client.post("/api/appointments", json=other, headers=auth)
    assert response.status == 409 and (await response.json())["error"] == "that slot is full"
    response = await client.patch(
        f"/api/appointments/{first['id']}", json={"status": "cancelled"}, headers=auth
    )
    assert response.status == 200, await response.text()
    cancelled = await response.json()
    assert cancelled["status"] == "cancelled"
    assert {r["status"] for r in cancelled["reminders"]} == {"skipped"}
    assert [(h["from_status"], h["to_status"], h["source"]) for h in cancelled["history"]][-1] == (
        "booked",
        "cancelled",
        "api",
    )
    response = await client.post("/api/appointments", json=other, headers=auth)
    assert response.status == 201, await response.text()
    response = await client.patch(f"/api/appointments/{first['id']}", json={"status": "booked"}, headers=auth)
    assert response.status == 409  # back from cancelled needs a seat, and Bo has it
    assert await AppointmentSeat.all().count() == 1


async def test_staff_move_and_note_and_the_customers_chat_changes_show(bot_client: BotFactory) -> None:
    client, auth = await start(bot_client)
    booked = await (await client.post("/api/appointments", json=appointment_json(), headers=auth)).json()
    path = f"/api/appointments/{booked['id']}"
    response = await client.patch(
        path, json={"starts_at": "2030-01-08T11:30:00+01:00", "notes": None}, headers=auth
    )
    assert response.status == 200, await response.text()
    moved = await response.json()
    assert (moved["status"], moved["starts_at"], moved["notes"]) == (
        "rescheduled",
        "2030-01-08T11:30:00+01:00",
        None,
    )
    assert moved["history"][-1]["from_starts_at"].startswith("2030-01-07T09:00:00")  # stored in UTC
    assert [r["due_at"][:16] for r in moved["reminders"]] == ["2030-01-07T10:30", "2030-01-08T08:30"]
    for bad in ({"status": None}, {"status": "lost"}, {"starts_at": "2030-01-08T11:31:00+01:00"}):
        assert (await client.patch(path, json=bad, headers=auth)).status == 422, bad
    assert (await client.patch("/api/appointments/999", json={"notes": "x"}, headers=auth)).status == 404

    service = client.app[APPOINTMENTS]  # what the chat's Confirm button calls
    assert await service.confirm(booked["id"], PHONE) is not None
    shown = await (await client.get(path, headers=auth)).json()
    assert (shown["status"], shown["history"][-1]["source"]) == ("confirmed", "chat")

    listed = await (
        await client.get(f"/api/appointments?phone={PHONE}&from=2030-01-08&to=2030-01-09", headers=auth)
    ).json()
    assert [a["id"] for a in listed] == [booked["id"]]
    assert await (await client.get("/api/appointments?from=2030-01-09", headers=auth)).json() == []
