"""Opt-out through the real server (on SQLite and PostgreSQL): STOP and START in the customer's own
words, confirmed in their language, recorded in the consent ledger, never run through the flow; their
questions are still answered while out; the shop's status notices are refused while out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.db.models import ConsentAction, ConsentScope, ConsentSource, Customer, DeliveryStatus, OrderSource
from bot.orders.schemas import OrderIn, OrderPatch
from bot.orders.service import OrderService
from bot.privacy.consent import consent_history, record
from bot.whatsapp.errors import CODE_OPTED_OUT
from tests.helpers import BotFactory, eventually, handled, outbound_rows, post_webhook, text_notification
from tests.orders_helpers import PHONE, SHOP, order_json, order_settings, started_service

ES = "15550881001"
ZH = "15550881002"


async def say(client: object, phone: str, wamid: str, text: str) -> str | None:
    assert (await post_webhook(client, text_notification(phone, wamid, text))).status == 200  # type: ignore[arg-type]
    await eventually(lambda: handled(wamid))
    rows = [row for row in await outbound_rows() if row.reply_to == wamid]
    return rows[-1].message_content if rows else None


async def test_stop_and_start_in_spanish_and_chinese(bot_client: BotFactory) -> None:
    client = await bot_client()
    await Customer.create(wa_id=ES, language="es")
    told = await say(client, ES, "wamid.OPT.es1", "BAJA")
    assert told is not None and "Envía ALTA" in told
    assert (await Customer.get(wa_id=ES)).opted_out_at is not None
    answered = await say(client, ES, "wamid.OPT.es2", "hola")  # their question still gets its answer
    assert answered and "ALTA" not in answered
    told = await say(client, ES, "wamid.OPT.es3", "alta")
    assert told is not None and told.startswith("¡Bienvenido de nuevo!")
    customer = await Customer.get(wa_id=ES)
    assert customer.opted_out_at is None
    history = await consent_history(customer.id)
    assert [(h["action"], h["source"], h["detail"]) for h in history] == [
        ("opt_out", "keyword", "BAJA"),
        ("opt_in", "keyword", "alta"),
    ]
    assert history[0]["at"] <= history[1]["at"]

    # a new customer with no language yet is answered in the word's language
    told = await say(client, ZH, "wamid.OPT.zh1", "退订")
    assert told is not None and told.startswith("您将不再收到")
    told = await say(client, ZH, "wamid.OPT.zh2", "订阅")
    assert told is not None and told.startswith("欢迎回来")
    assert (await Customer.get(wa_id=ZH)).language == "zh"


@pytest.fixture
async def orders(database_url: str, tmp_path: Path) -> AsyncIterator[OrderService]:
    settings = order_settings(tmp_path, database_url, extra="shop:\n  default_language: en\n" + SHOP)
    async with started_service(settings, []) as service:
        yield service


async def test_a_status_notice_is_refused_while_out_and_sent_after_start(orders: OrderService) -> None:
    customer = await Customer.create(wa_id=PHONE, language="en", last_inbound_at=datetime.now(UTC))
    now = datetime.now(UTC) - timedelta(minutes=1)
    await record(customer, ConsentScope.ALL, ConsentAction.OPT_OUT, ConsentSource.KEYWORD, now, "STOP")
    data = OrderIn.model_validate(order_json("R-1001", status="received"), context=orders.validation_context)
    await orders.upsert(data, OrderSource.API)
    [refused] = [row for row in await outbound_rows() if row.order_id is not None]
    assert refused.delivery_status == DeliveryStatus.FAILED and refused.error_code == CODE_OPTED_OUT
    assert "opted out" in str(refused.error_title)

    await record(customer, ConsentScope.ALL, ConsentAction.OPT_IN, ConsentSource.KEYWORD, now, "START")
    await orders.update("R-1001", OrderPatch(status="in_progress"), OrderSource.API)
    rows = [row for row in await outbound_rows() if row.order_id is not None]
    assert len(rows) == 2 and rows[-1].delivery_status == DeliveryStatus.QUEUED
