"""Flood: a customer over `limits.inbound_per_minute` gets one polite note; the rest of that minute's
messages are stored and marked handled, never run through the engine; other customers go on as usual."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tortoise import connections

from bot.db import close_db, init_db, sql
from bot.db.models import Customer, DeliveryStatus, Message
from bot.settings import load_settings
from bot.spine import flood
from tests.helpers import (
    REPO,
    BotFactory,
    create_schema,
    eventually,
    message_with,
    outbound_texts,
    post_webhook,
    text_notification,
)

FLOODER = "15550441100"
CALM = "15550441199"
LIMIT = 5


def at(phone: str, wamid: str, text: str, timestamp: int) -> dict[str, Any]:
    notification = text_notification(phone, wamid, text)
    notification["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(timestamp)
    return notification


async def all_handled(wamids: list[str]) -> bool:
    return await Message.filter(
        whatsapp_message_id__in=wamids, delivery_status=DeliveryStatus.HANDLED
    ).count() == len(wamids)


def test_the_default_is_30_a_minute() -> None:
    assert load_settings(REPO / "settings.yaml", {}).limits.inbound_per_minute == 30


async def test_a_flood_gets_one_note_and_loses_nothing(bot_client: BotFactory) -> None:
    client = await bot_client(f"limits:\n  inbound_per_minute: {LIMIT}\n")
    now = int(time.time())
    await Customer.create(wa_id=FLOODER, language="es")
    flood = [f"wamid.FLOOD.{n}" for n in range(LIMIT + 4)]
    calm = ["wamid.CALM.0"]
    for n, wamid in enumerate(flood):
        assert (await post_webhook(client, at(FLOODER, wamid, f"hola {n}", now))).status == 200
        if n == 2:
            assert (await post_webhook(client, at(CALM, calm[0], "hi", now))).status == 200
    await eventually(lambda: all_handled(flood + calm))

    rows = {row.whatsapp_message_id: row for row in await Message.filter(whatsapp_message_id__in=flood)}
    assert len(rows) == LIMIT + 4  # every message kept
    answered = [wamid for wamid in flood if rows[wamid].error_title is None]
    kept = [wamid for wamid in flood if rows[wamid].error_title is not None]
    assert answered == flood[:LIMIT] and kept == flood[LIMIT:]
    assert all("more than 5 messages in a minute" in str(rows[wamid].error_title) for wamid in kept)
    assert all(rows[wamid].message_content == f"hola {n}" for n, wamid in enumerate(flood))
    told = [text for text in await outbound_texts(FLOODER) if text and "pausa de un minuto" in text]
    assert len(told) == 1  # one note, in the customer's language
    note = await message_with(told[0], address=FLOODER)
    assert note.reply_to == flood[LIMIT]  # an answer to the first message over the limit
    assert len(await outbound_texts(FLOODER)) == LIMIT + 1  # the engine ran for the first five only
    assert await outbound_texts(CALM)  # the other customer was answered as usual

    # a minute later (by the customer's own clock) the bot answers again
    later = "wamid.FLOOD.later"
    assert (await post_webhook(client, at(FLOODER, later, "menu", now + 61))).status == 200
    await eventually(lambda: all_handled([later]))
    assert (await Message.get(whatsapp_message_id=later)).error_title is None
    assert len(await outbound_texts(FLOODER)) > LIMIT + 1


async def test_the_limit_can_be_turned_off(bot_client: BotFactory, tmp_path: Path) -> None:
    client = await bot_client("limits:\n  inbound_per_minute: 0\n")
    now = int(time.time())
    wamids = [f"wamid.NOLIMIT.{n}" for n in range(8)]
    for wamid in wamids:
        assert (await post_webhook(client, at(FLOODER, wamid, "hi", now))).status == 200
    await eventually(lambda: all_handled(wamids))
    assert not await Message.filter(whatsapp_message_id__in=wamids, error_title__isnull=False).exists()


async def test_the_flood_count_reads_the_batchs_customers_not_every_inbound_row(tmp_path: Path) -> None:
    """SQLite keeps no statistics here, and took the two-valued index on `message_direction` (dropped
    by migration 0011) for the count each inbox batch makes: every inbound row ever stored, read per
    batch. Its plan must go through the customers' own rows."""
    url = f"sqlite://{tmp_path / 'bot.db'}"
    await create_schema(url)
    await init_db(url)
    try:
        where = flood._RECENT_INBOUND.format(sql.marks(3))
        _, plan = await connections.get("default").execute_query(
            f'EXPLAIN QUERY PLAN SELECT "customer_id" FROM "message" WHERE {where} GROUP BY "customer_id"',
            ["inbound", "2026-12-03 10:00:00", 100, 1, 2, 3],
        )
        details = " ".join(str(row["detail"]) for row in plan)
        assert "(customer_id=?" in details, details
        assert "message_direction" not in details, details
    finally:
        await close_db()
