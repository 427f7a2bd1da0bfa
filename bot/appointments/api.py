"""The appointments API for staff and the shop's system: POST/GET /api/appointments,
GET/PATCH /api/appointments/{id}. The orders API's keys (`bot apikeys add NAME`) and error style.

Thin on purpose: authenticate, validate (422 naming each field), hand over to the AppointmentService.
A full slot is 409; a time that is not the start of a slot on an open day is 422 on `starts_at`.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot.api_errors import FieldError, dumps, error_response, invalid, path_id, validated_body
from bot.appointments.schemas import (
    FIELDS,
    PATCH_FIELDS,
    AppointmentIn,
    AppointmentOut,
    AppointmentPatch,
    AppointmentQuery,
    field_errors,
)
from bot.appointments.service import AppointmentService, NotBookable, SlotTaken, StaffChange, ends_at
from bot.db.models import Appointment
from bot.orders.keys import require_api_key

log = logging.getLogger(__name__)

APPOINTMENTS = web.AppKey("appointments", AppointmentService)
Body = TypeVar("Body", bound=BaseModel)
NOT_A_SLOT = "not the start of a slot on an open day (see appointments.opening_hours and slot_minutes)"


async def create(request: web.Request) -> web.Response:
    service = request.app[APPOINTMENTS]
    data = await _validated(request, AppointmentIn, FIELDS)
    try:
        appointment = await service.create(
            phone=data.customer_phone,
            name=data.customer_name,
            starts_at=data.starts_at,
            duration_minutes=data.duration_minutes,
            device_model=data.device_model,
            order_number=data.order_number,
            notes=data.notes,
            status=data.status,
        )
    except NotBookable:
        return _invalid_field("starts_at", NOT_A_SLOT)
    except SlotTaken:
        return error_response(409, "that slot is full")
    log.info("appointment %s booked via API", appointment.id)
    return await _appointment_response(service, appointment.id, status=201)


async def update(request: web.Request) -> web.Response:
    service = request.app[APPOINTMENTS]
    patch = await _validated(request, AppointmentPatch, PATCH_FIELDS)
    change = StaffChange(
        status=patch.status,
        starts_at=patch.starts_at,
        notes=patch.notes,
        notes_given="notes" in patch.model_fields_set,
        notify=patch.notify,
    )
    try:
        result = await service.change(_id(request), change)
    except NotBookable:
        return _invalid_field("starts_at", NOT_A_SLOT)
    except SlotTaken:
        return error_response(409, "that slot is full")
    if result is None:
        return error_response(404, "no appointment with this id")
    log.info("appointment %s updated via API (customer told: %s)", result.appointment.id, result.notification)
    return await _appointment_response(
        service, result.appointment.id, status=200, notification=result.notification
    )


async def show(request: web.Request) -> web.Response:
    await _authenticate(request)
    service = request.app[APPOINTMENTS]
    return await _appointment_response(service, _id(request), status=200)


async def listing(request: web.Request) -> web.Response:
    await _authenticate(request)
    service = request.app[APPOINTMENTS]
    try:
        query = AppointmentQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        return _invalid(exc, ("phone", "from", "to"))
    found = await service.search(query.phone, _moment(query.start, service), _moment(query.end, service))
    body = [_out(appointment, service).model_dump(mode="json") for appointment in found]
    return web.Response(text=dumps(body), content_type="application/json")


async def _appointment_response(
    service: AppointmentService, appointment_id: int, status: int, notification: str | None = None
) -> web.Response:
    appointment = await service.get(appointment_id)
    if appointment is None:
        return error_response(404, "no appointment with this id")
    out = _out(appointment, service).model_copy(update={"notification": notification})
    return web.Response(text=out.model_dump_json(), status=status, content_type="application/json")


def _out(appointment: Appointment, service: AppointmentService) -> AppointmentOut:
    """Times in the shop's zone; the reminders of the current plan; history oldest first."""
    zone = service.zone
    return AppointmentOut(
        id=appointment.id,
        customer_phone=appointment.customer_phone,
        customer_name=appointment.customer_name,
        starts_at=appointment.starts_at.astimezone(zone),
        ends_at=ends_at(appointment).astimezone(zone),
        duration_minutes=appointment.duration_minutes,
        device_model=appointment.device_model,
        order_number=appointment.order_number,
        status=str(appointment.status),
        notes=appointment.notes,
        created_at=appointment.created_at,
        updated_at=appointment.updated_at,
        reminders=[
            r for r in sorted(appointment.reminders, key=lambda r: r.due_at) if r.plan == appointment.plan
        ],
        history=sorted(appointment.history, key=lambda change: change.id),
    )


def _moment(value: datetime | date | None, service: AppointmentService) -> datetime | None:
    """A date is the start of that day in the shop's zone."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.combine(value, time(), tzinfo=service.zone)


def _id(request: web.Request) -> int:
    return path_id(request, "id", "no appointment with this id")


async def _validated(request: web.Request, model: type[Body], fields: tuple[str, ...]) -> Body:
    await _authenticate(request)
    return await validated_body(request, model, "appointment", lambda exc: field_errors(exc, fields))


async def _authenticate(request: web.Request) -> None:
    await require_api_key(request, "appointments")


def _invalid(exc: ValidationError, fields: tuple[str, ...]) -> web.Response:
    return invalid("appointment", field_errors(exc, fields))


def _invalid_field(field: str, message: str) -> web.Response:
    return invalid("appointment", [FieldError(field=field, message=message)])


def add_routes(app: web.Application, service: AppointmentService) -> None:
    app[APPOINTMENTS] = service
    app.router.add_post("/api/appointments", create)
    app.router.add_get("/api/appointments", listing)
    app.router.add_get("/api/appointments/{id}", show)
    app.router.add_patch("/api/appointments/{id}", update)
