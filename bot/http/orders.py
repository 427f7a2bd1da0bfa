"""The orders API for the shop's own system: POST /api/orders (create or update by order number),
PATCH /api/orders/{number}, GET /api/orders/{number}. Bearer API keys (`bot apikeys add NAME`).

Thin on purpose: authenticate, validate (422 naming each field), hand over to the OrderService.
"""

from __future__ import annotations

import logging
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from bot.db.models import Order, OrderSource
from bot.http.errors import error_response, validated_body
from bot.orders.keys import require_api_key
from bot.orders.schemas import OrderIn, OrderOut, OrderPatch, field_errors
from bot.orders.service import OrderChange, OrderService

log = logging.getLogger(__name__)

ORDERS = web.AppKey("orders", OrderService)
Body = TypeVar("Body", bound=BaseModel)


async def create_or_update(request: web.Request) -> web.Response:
    service = request.app[ORDERS]
    data = await _validated(request, OrderIn, service)
    change = await service.upsert(data, OrderSource.API)
    log.info("order %s %s via API", change.order.order_number, "created" if change.created else "updated")
    return await _order_response(change, status=201 if change.created else 200)


async def update(request: web.Request) -> web.Response:
    service = request.app[ORDERS]
    patch = await _validated(request, OrderPatch, service)
    change = await service.update(request.match_info["number"], patch, OrderSource.API)
    if change is None:
        return error_response(404, "no order with this number")
    log.info("order %s updated via API", change.order.order_number)
    return await _order_response(change, status=200)


async def show(request: web.Request) -> web.Response:
    await _authenticate(request)
    order = await request.app[ORDERS].get(request.match_info["number"])
    if order is None:
        return error_response(404, "no order with this number")
    return _json(_order_out(order), status=200)


async def _validated(request: web.Request, model: type[Body], service: OrderService) -> Body:
    await _authenticate(request)
    return await validated_body(request, model, "order", field_errors, service.validation_context)


async def _authenticate(request: web.Request) -> None:
    await require_api_key(request, "orders")


async def _order_response(change: OrderChange, status: int) -> web.Response:
    await change.order.fetch_related("history")
    out = _order_out(change.order).model_copy(update={"notification": change.notification})
    return _json(out, status=status)


def _order_out(order: Order) -> OrderOut:
    """The order as stored, with its history (prefetched) oldest change first."""
    values = {name: getattr(order, name) for name in OrderOut.model_fields if hasattr(order, name)}
    values["history"] = sorted(order.history, key=lambda change: change.id)
    return OrderOut.model_validate(values)


def _json(body: BaseModel, status: int) -> web.Response:
    return web.Response(text=body.model_dump_json(), status=status, content_type="application/json")


def add_routes(app: web.Application, service: OrderService) -> None:
    app[ORDERS] = service
    app.router.add_post("/api/orders", create_or_update)
    app.router.add_patch("/api/orders/{number}", update)
    app.router.add_get("/api/orders/{number}", show)
