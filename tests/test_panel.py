"""The technician panel's own server side: the page and its files, and the customer view beside a chat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.db.models import Appointment, AppointmentStatus, Order, TechnicianRole
from bot.handoff.tokens import create_technician
from tests.helpers import BotFactory, bearer, eventually, handled, payload, post_webhook, text_notification

PHONE = "15550003333"


async def test_the_page_and_its_files_are_served_self_contained(bot_client: BotFactory) -> None:
    client = await bot_client()
    page = await client.get("/panel")
    assert page.status == 200
    assert page.content_type == "text/html"
    html = await page.text()
    assert 'id="token"' in html and "/panel/static/panel.js" in html
    # no CDN: the shop's server may be offline, and the CSP admits only our own origin
    assert "https://" not in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    for name, kind in [("panel.js", "javascript"), ("panel.css", "text/css")]:
        response = await client.get(f"/panel/static/{name}")
        assert response.status == 200
        assert kind in response.content_type
    slash = await client.get("/panel/", allow_redirects=False)
    assert slash.status == 308 and slash.headers["Location"] == "/panel"


async def test_customer_view_needs_a_technician_token(bot_client: BotFactory) -> None:
    client = await bot_client()
    url = f"/panel/api/customers/{PHONE}"
    assert (await client.get(url)).status == 401
    assert (await client.get(url, headers={"Authorization": "Bearer rt_nope"})).status == 401


async def test_customer_view_lists_orders_and_upcoming_appointments(bot_client: BotFactory) -> None:
    client = await bot_client()
    _, token = await create_technician("Tess")
    for number, phone in [("R-1", PHONE), ("R-2", "15559999999")]:
        await Order.create(
            order_number=number,
            customer_phone=phone,
            customer_name="Alex",
            device_model="iPhone 13",
            problem="cracked screen",
            status="in_progress",
        )
    now = datetime.now(UTC)
    for hours, status in [
        (24, AppointmentStatus.BOOKED),
        (48, AppointmentStatus.CANCELLED),
        (-24, AppointmentStatus.COMPLETED),
    ]:
        await Appointment.create(
            customer_phone=PHONE,
            starts_at=now + timedelta(hours=hours),
            duration_minutes=30,
            status=status,
            device_model="iPhone 13",
            order_number="R-1",
        )

    response = await client.get(
        f"/panel/api/customers/+{PHONE}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 200
    body = await response.json()
    assert body["customer_phone"] == PHONE
    assert [order["order_number"] for order in body["orders"]] == ["R-1"]
    assert body["orders"][0]["status"] == "in_progress"
    # upcoming and not cancelled only
    assert [appointment["status"] for appointment in body["appointments"]] == ["booked"]


async def test_the_chat_and_the_customer_view_show_the_opt_outs_with_since_when(
    bot_client: BotFactory,
) -> None:
    client = await bot_client()
    _, token = await create_technician("Boss", TechnicianRole.ADMIN)
    for wamid, text in (("wamid.PANEL_OPT1", "hi"), ("wamid.PANEL_OPT2", "STOP")):
        assert (await post_webhook(client, text_notification(PHONE, wamid, text))).status == 200
        await eventually(lambda wamid=wamid: handled(wamid))
    # the same phone stops marketing inside WhatsApp (tests/payloads/user_preferences_marketing_stop.json)
    assert (await post_webhook(client, payload("user_preferences_marketing_stop.json"))).status == 200
    marketing_since = datetime.fromtimestamp(1750004000, UTC)

    async def views() -> list[dict[str, object]]:
        return [
            await (await client.get(url, headers=bearer(token))).json()
            for url in (f"/panel/api/customers/{PHONE}", f"/api/tech/chats/{PHONE}/messages")
        ]

    for view in await views():
        assert isinstance(view["opted_out_at"], str)
        stopped = datetime.fromisoformat(view["opted_out_at"])
        assert timedelta(0) <= datetime.now(UTC) - stopped < timedelta(minutes=5)
        assert isinstance(view["marketing_opted_out_at"], str)
        assert datetime.fromisoformat(view["marketing_opted_out_at"]) == marketing_since

    assert (await post_webhook(client, text_notification(PHONE, "wamid.PANEL_OPT3", "START"))).status == 200
    await eventually(lambda: handled("wamid.PANEL_OPT3"))
    for view in await views():
        assert view["opted_out_at"] is None  # back in for what the shop starts
        assert view["marketing_opted_out_at"] is not None  # marketing is WhatsApp's setting: still out
