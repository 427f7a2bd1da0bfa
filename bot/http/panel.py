"""`GET /panel/api/customers/{phone}`: a customer's orders and upcoming appointments, for the panel.

The orders API takes API keys meant for the shop's systems; the panel holds a technician token instead,
so it gets this small read-only view of its own, authenticated the way /api/tech/* is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from bot.db.models import Appointment, AppointmentStatus, Order
from bot.http.messages import normalize_phone
from bot.http.technicians import authenticate

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
    customer_phone: str
    orders: list[OrderSummary]
    appointments: list[AppointmentSummary]


async def customer(request: web.Request) -> web.Response:
    await authenticate(request)
    phone = normalize_phone(request.match_info["phone"])
    orders = await Order.filter(customer_phone=phone).order_by("-updated_at").limit(MAX_ORDERS)
    appointments = (
        await Appointment.filter(customer_phone=phone, starts_at__gte=datetime.now(UTC))
        .exclude(status=AppointmentStatus.CANCELLED)
        .order_by("starts_at")
    )
    body = CustomerOut(
        customer_phone=phone,
        orders=[OrderSummary.model_validate(order) for order in orders],
        appointments=[AppointmentSummary.model_validate(appointment) for appointment in appointments],
    )
    return web.Response(text=body.model_dump_json(), content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/panel/api/customers/{phone}", customer)
