"""`GET /panel/api/customers/{phone}`: a customer's orders, upcoming appointments and opt-outs, for the
panel.

The orders API takes API keys meant for the shop's systems; the panel holds a technician token instead,
so it gets this small read-only view of its own, authenticated the way /api/tech/* is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from aiohttp import web
from pydantic import BaseModel, ConfigDict
from tortoise.expressions import Q

from bot.db.models import Appointment, AppointmentStatus, Customer
from bot.http.messages import normalize_phone
from bot.http.technicians import authenticate
from bot.identity import customer_by_address
from bot.orders.owner import orders_of

MAX_ORDERS = 20


class OrderSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    order_number: str
    device_model: str
    problem: str
    status: str
    quoted_price: Decimal | None
    technician: str | None
    updated_at: datetime


class AppointmentSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    starts_at: datetime
    duration_minutes: int
    status: str
    device_model: str | None
    order_number: str | None


class CustomerOut(BaseModel):
    customer_phone: str | None
    customer_id: int | None
    opted_out_at: datetime | None
    """Since when they want none of the messages the shop starts (a stop word); None: in."""
    marketing_opted_out_at: datetime | None
    """Since when they want no marketing (WhatsApp's own setting, error 131050); None: in."""
    orders: list[OrderSummary]
    appointments: list[AppointmentSummary]


async def customer(request: web.Request) -> web.Response:
    await authenticate(request)
    raw = request.match_info["phone"].strip()
    if any(ch.isalpha() for ch in raw):  # a business-scoped user ID: a customer without a phone
        found = await customer_by_address(raw)
        return await _customer_view(found, found.wa_id if found else None)
    phone = normalize_phone(raw)
    return await _customer_view(await customer_by_address(phone) if phone else None, phone or None)


async def customer_by_id(request: web.Request) -> web.Response:
    await authenticate(request)
    try:
        customer_id = int(request.match_info["customer_id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    found = await Customer.get_or_none(id=customer_id)
    if found is None:
        raise web.HTTPNotFound()
    return await _customer_view(found, found.wa_id)


async def _customer_view(found: Customer | None, phone: str | None) -> web.Response:
    """A customer's orders, upcoming appointments and opt-outs (none for a phone nobody has)."""
    owner = found.id if found else -1
    orders = (
        await orders_of(found.id if found else None, found.wa_id if found else phone)
        .order_by("-updated_at")
        .limit(MAX_ORDERS)
    )
    mine = Q(customer_id=owner) | Q(customer_id=None, customer_phone=phone) if phone else Q(customer_id=owner)
    appointments = (
        await Appointment.filter(mine, starts_at__gte=datetime.now(UTC))
        .exclude(status=AppointmentStatus.CANCELLED)
        .order_by("starts_at")
    )
    body = CustomerOut(
        customer_phone=phone,
        customer_id=found.id if found else None,
        opted_out_at=found.opted_out_at if found else None,
        marketing_opted_out_at=found.marketing_opted_out_at if found else None,
        orders=[OrderSummary.model_validate(order) for order in orders],
        appointments=[AppointmentSummary.model_validate(appointment) for appointment in appointments],
    )
    return web.Response(text=body.model_dump_json(), content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/panel/api/customers/{phone}", customer)
    app.router.add_get("/panel/api/customers/by-id/{customer_id}", customer_by_id)
