"""The read-only HTTP API for staff and the shop's systems: health and a conversation's message log."""

from __future__ import annotations

import hmac
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from bot.db import ping
from bot.db.models import Message
from bot.http.errors import bearer_token
from bot.identity import customer_by_address

ADMIN_TOKEN = web.AppKey("admin_token", str)


class MessageOut(BaseModel):
    """One message-log row as the API shows it."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: int
    address: str
    """The phone or BSUID it came from or went to."""
    message_direction: str
    message_type: str
    message_content: str | None
    file_url: str | None
    file_name: str | None
    whatsapp_message_id: str | None
    delivery_status: str
    error_code: int | None
    error_title: str | None
    order_id: int | None
    technician_id: int | None
    attempts: int
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ConversationLog(BaseModel):
    customer_phone: str
    customer_id: int | None
    messages: list[MessageOut]


def bearer_ok(request: web.Request, expected: str) -> bool:
    """Constant-time check of `Authorization: Bearer <token>`; an empty expected token admits nobody."""
    token = bearer_token(request)
    if not expected or not token:
        return False
    return hmac.compare_digest(token.encode(), expected.encode())


def normalize_phone(raw: str) -> str:
    """WhatsApp ids are digits without '+'; accept '+1 555-000' style input from people."""
    return "".join(ch for ch in raw if ch.isdigit())


async def conversation_messages(request: web.Request) -> web.Response:
    if not bearer_ok(request, request.app[ADMIN_TOKEN]):
        return web.json_response({"error": "missing or wrong bearer token"}, status=401)
    raw = request.match_info["phone"].strip()
    # a business-scoped user ID (US.1349…) names a customer without a phone; anything else is a phone
    phone = raw if any(ch.isalpha() for ch in raw) else normalize_phone(raw)
    if not phone:
        return web.json_response({"error": "phone must contain digits"}, status=400)
    customer = await customer_by_address(phone)
    rows = await Message.filter(customer_id=customer.id).order_by("id") if customer else []
    body = ConversationLog(
        customer_phone=phone,
        customer_id=customer.id if customer else None,
        messages=[MessageOut.model_validate(row) for row in rows],
    )
    return web.Response(text=body.model_dump_json(), content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    if await ping():
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "database unavailable"}, status=503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/conversations/{phone}/messages", conversation_messages)
    app.router.add_get("/healthz", healthz)
