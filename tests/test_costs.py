"""The cost ledger from real-shaped status webhooks, GET /api/costs, bot costs, a price-table change,
the budget's warnings and the month's cost in /metrics."""

from __future__ import annotations

import asyncio
import copy
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.db import close_db, init_db
from bot.db.models import CostEntry, DeliveryStatus, Direction, Message
from bot.identity.lookup import customer_for_phone
from tests.helpers import (
    ADMIN_TOKEN,
    BotFactory,
    migrated_sqlite,
    payload,
    post_webhook,
    write_settings,
)
from tests.test_commands import run_bot
from tests.test_metrics import scrape, value

SPAIN, US = "34600111222", "15550002222"
RATES = """
costs:
  currency: EUR
  monthly_budget: 0.10
  tables:
    - effective_from: 2026-01-01
      rates:
        marketing: {"34": 0.05, "*": 0.06}
        utility: {"34": 0.02, "*": 0.03}
"""
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def sent_row(
    phone: str, wamid: str, *, template: str | None = None, flow: str | None = None
) -> Message:
    customer = await customer_for_phone(phone, datetime.now(UTC))
    message: dict[str, Any] = (
        {"kind": "template", "name": template, "language": "en"}
        if template
        else {"kind": "text", "body": "hi"}
    )
    return await Message.create(
        customer_id=customer.id,
        address=phone,
        message_direction=Direction.OUTBOUND,
        message_type="template" if template else "text",
        payload=message,
        delivery_status=DeliveryStatus.SENT,
        whatsapp_message_id=wamid,
        sent_at=datetime.now(UTC),
        flow=flow,
    )


def status(wamid: str, kind: str, pricing: dict[str, Any] | None, phone: str = SPAIN) -> dict[str, Any]:
    body = copy.deepcopy(payload("status_sent_template_marketing.json"))
    entry = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    entry.update(id=wamid, status=kind, recipient_id=phone, timestamp=str(int(datetime.now(UTC).timestamp())))
    entry.pop("pricing")
    if pricing is not None:
        entry["pricing"] = pricing
    return body


MARKETING = {"billable": True, "pricing_model": "PMP", "type": "regular", "category": "marketing"}


async def test_the_ledger_from_status_webhooks(bot_client: BotFactory) -> None:
    client = await bot_client(RATES)
    offer = await sent_row(SPAIN, "wamid.OUT_TPL_0001", template="order_status_update")
    reply = await sent_row(SPAIN, "wamid.OUT_TXT_1", flow="main")
    novel = await sent_row(US, "wamid.OUT_TXT_2", flow="appointments")
    for body in (
        status(offer.whatsapp_message_id, "sent", MARKETING),  # type: ignore[arg-type]
        status(offer.whatsapp_message_id, "delivered", MARKETING),  # the same pricing again: once
        status(offer.whatsapp_message_id, "read", None),
        status(
            "wamid.OUT_TXT_1",
            "sent",
            {"pricing_model": "PMP", "type": "free_customer_service", "category": "service"},
        ),
        status(
            "wamid.OUT_TXT_2",
            "sent",
            {"pricing_model": "PMP", "type": "regular", "category": "general_purpose_ai"},
            US,
        ),
    ):
        assert (await post_webhook(client, body)).status == 200
    entries = {entry.message_id: entry for entry in await CostEntry.all()}
    assert len(entries) == 3
    first = entries[offer.id]
    assert (first.category, first.pricing_type, first.market, first.template) == (
        "marketing",
        "regular",
        "34",
        "order_status_update",
    )
    assert first.customer_id == offer.customer_id
    assert (entries[reply.id].flow, entries[novel.id].category) == ("main", "general_purpose_ai")

    month = f"{datetime.now(ZoneInfo('Europe/Madrid')):%Y-%m}"
    answer = await client.get("/api/costs", params={"month": month}, headers=ADMIN)
    assert answer.status == 200
    body = await answer.json()
    assert (body["total"], body["currency"], body["messages"], body["charged_messages"]) == (
        "0.0500",
        "EUR",
        3,
        2,
    )
    assert [(c["category"], c["amount"]) for c in body["by_category"]] == [
        ("marketing", "0.0500"),
        ("general_purpose_ai", "0.0000"),  # a category Meta added: priced at nothing, never refused
        ("service", "0.0000"),
    ]
    assert body["by_template"] == [{"messages": 1, "amount": "0.0500", "template": "order_status_update"}]
    assert [f["flow"] for f in body["by_flow"]] == ["appointments", "main"]
    assert body["free"] == {"messages": 1, "by_reason": {"free_customer_service": 1}}
    assert (body["per_message"], body["conversations"], body["per_conversation"]) == ("0.0250", 2, "0.0250")
    assert body["budget"]["level"] is None and body["budget"]["used"] == 0.5
    assert body["messaging_limit"] == {"limit": 250, "used": 0, "headroom": 250, "next_free_at": None}
    refused = await client.get("/api/costs", params={"month": "2026-13"}, headers=ADMIN)
    assert refused.status == 422
    assert (await client.get("/api/costs")).status == 401

    found = await scrape(client)
    assert value(found, "bot_cost_month", currency="EUR") == 0.05
    assert value(found, "bot_budget_used_ratio") == 0.5
    assert value(found, "bot_messaging_limit_headroom") == 250


def test_a_price_change_is_a_new_table_and_reprices_the_ledger(tmp_path: Path) -> None:
    url = migrated_sqlite(tmp_path / "bot.db")

    async def seed() -> None:
        await init_db(url)
        try:
            for n, day in enumerate((3, 20)):
                await CostEntry.create(
                    message_id=n + 1,
                    customer_id=1,
                    market="34",
                    message_type="template",
                    category="utility",
                    pricing_type="regular",
                    template="order_status_update",
                    at=datetime(2026, 11, day, 12, tzinfo=UTC),
                )
        finally:
            await close_db()

    asyncio.run(seed())
    env = {"BOT_SETTINGS": str(write_settings(tmp_path, RATES)), "DATABASE_URL": url}
    before = run_bot("costs", "2026-11", env=env)
    assert before.returncode == 0, before.stderr
    assert "total                        0.0400 EUR" in before.stdout  # 2 × 0.02
    assert "order_status_update                  2       0.0400 EUR" in before.stdout
    new_table = (
        RATES
        + """    - effective_from: 2026-11-15
      rates:
        utility: {"34": 0.01}
"""
    )
    env["BOT_SETTINGS"] = str(write_settings(tmp_path, new_table))
    after = run_bot("costs", "2026-11", env=env)
    assert "total                        0.0300 EUR" in after.stdout  # 0.02 before the 15th, 0.01 after
    assert run_bot("costs", "November", env=env).returncode == 2


async def test_the_budget_warns_at_80_and_100_percent(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.costs.service import CostWatch
    from tests.helpers import make_settings

    settings = make_settings(tmp_path, database_url, extra=RATES)
    watch = CostWatch(settings.costs, ZoneInfo(settings.shop.timezone))
    now = datetime.now(UTC)
    await init_db(database_url)
    try:
        caplog.set_level(logging.WARNING, logger="bot.costs.service")
        for n in range(1, 3):  # 2 × 0.05 of 0.10: 50%, then 100%
            await CostEntry.create(
                message_id=n,
                customer_id=1,
                market="34",
                message_type="template",
                category="marketing",
                pricing_type="regular",
                at=now,
            )
            watch.forget()
            state = await watch.state(now)
        assert (state.spent, state.level, state.over) == (Decimal("0.1000"), "100%", True)
        await CostEntry.create(
            message_id=9,
            customer_id=1,
            market="34",
            message_type="template",
            category="utility",
            pricing_type="regular",
            at=now,
        )
        watch.forget()
        await watch.state(now)  # still 100%: not said again
        await watch.state(now + timedelta(seconds=1))
    finally:
        await close_db()
    warnings = [r.getMessage() for r in caplog.records if "monthly budget" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("monthly budget 100%")
    assert "marketing templates the shop starts are held" in warnings[0]


async def test_eighty_percent_is_said_once(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.costs.service import CostWatch
    from tests.helpers import make_settings

    settings = make_settings(tmp_path, database_url, extra=RATES.replace("0.10", "0.06"))
    watch = CostWatch(settings.costs, ZoneInfo(settings.shop.timezone))
    await init_db(database_url)
    try:
        caplog.set_level(logging.WARNING, logger="bot.costs.service")
        await CostEntry.create(
            message_id=1,
            customer_id=1,
            market="34",
            message_type="template",
            category="marketing",
            pricing_type="regular",
            at=datetime.now(UTC),
        )
        state = await watch.state(datetime.now(UTC))
    finally:
        await close_db()
    assert state.level == "80%"
    assert [r.getMessage()[:18] for r in caplog.records] == ["monthly budget 80%"]
