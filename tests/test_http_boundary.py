"""What every HTTP answer promises, whatever the route: ids from outside never reach the database
unchecked (404 or 422, never 500), and no answer can be sniffed into another content type."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.db.models import TechnicianRole
from bot.handoff.tokens import create_technician
from bot.orders.keys import create_key
from tests.helpers import (
    ADMIN_TOKEN,
    BotFactory,
    bearer,
    eventually,
    handled,
    post_webhook,
    text_notification,
)

Client = TestClient[web.Request, web.Application]
HUGE = "99999999999999999999999"


async def test_an_appointment_id_too_large_for_any_row_is_404(bot_client: BotFactory) -> None:
    client = await bot_client()
    auth = bearer(await create_key("shop-pos"))
    for path in (f"/api/appointments/{HUGE}", "/api/appointments/2147483648", "/api/appointments/0"):
        assert (await client.get(path, headers=auth)).status == 404
        response = await client.patch(path, json={"notes": "x"}, headers=auth)
        assert response.status == 404
        assert (await response.json())["error"] == "no appointment with this id"
    assert (await client.get("/api/appointments/٣", headers=auth)).status == 404  # a digit, not ASCII


async def test_a_transfer_to_a_technician_id_too_large_for_any_row_is_422(bot_client: BotFactory) -> None:
    client = await bot_client()
    _, token = await create_technician("Ana", TechnicianRole.ADMIN)
    await post_webhook(client, text_notification("15550004321", "wamid.B1", "technician"))
    await eventually(lambda: handled("wamid.B1"))
    await client.post("/api/tech/chats/15550004321/claim", headers=bearer(token))

    response = await client.post(
        "/api/tech/chats/15550004321/transfer", json={"technician_id": int(HUGE)}, headers=bearer(token)
    )

    assert response.status == 422
    assert [error["field"] for error in (await response.json())["errors"]] == ["technician_id"]


async def test_every_api_answer_and_panel_file_says_nosniff(bot_client: BotFactory) -> None:
    client = await bot_client()
    admin = bearer(ADMIN_TOKEN)
    answers = [
        await client.get("/panel/static/panel.js"),
        await client.get("/panel/static/panel.css"),
        await client.get("/panel"),
        await client.get("/api/conversations/15550001111/messages", headers=admin),
        await client.get("/api/conversations/15550001111/messages"),  # 401
        await client.get("/api/orders/R-1", headers=admin),  # 401: not an API key
        await client.get("/api/tech/queue"),
        await client.get("/api/nothing-here"),  # aiohttp's own 404
        await client.get("/healthz"),
    ]
    for response in answers:
        assert response.headers.get("X-Content-Type-Options") == "nosniff", response.url
