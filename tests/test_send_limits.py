"""The send limits through the real server: the budget holds marketing templates the shop starts, the
daily cap holds across a restart and across two processes, Meta's messaging limit holds the template
that would exceed it until a new tier arrives; replies inside the window never count."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from tortoise.transactions import in_transaction

from bot.db import close_db, init_db
from bot.db.models import CostEntry, Customer, DeliveryStatus, Direction, Message
from bot.identity.lookup import customer_for_phone
from bot.periods import local_midnight
from bot.spine.outbox import outbound_row
from bot.whatsapp.outbound import Template, Text
from tests.helpers import (
    ADMIN_TOKEN,
    POSTGRES_AVAILABLE,
    POSTGRES_URL,
    REPO,
    BotFactory,
    create_schema,
    eventually,
    free_port,
    graph_sends,
    install_test_keys,
    payload,
    post_webhook,
    reset_postgres,
    serve_env,
    write_settings,
)
from tests.test_crash import BotProcess
from tests.test_metrics import samples, scrape, value

OFFER = """name: spring_offer
category: marketing
status: approved
languages:
  en: "Hi {{1}}, 20% off screen repairs this week."
examples: ["Ana"]
"""


def templates_with_offer(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(REPO / "templates", folder)
    (folder / "spring_offer.yaml").write_text(OFFER)
    return folder


async def customer(phone: str, *, window_open: bool) -> Customer:
    found = await customer_for_phone(phone, datetime.now(UTC))
    found.last_inbound_at = datetime.now(UTC) - (timedelta(minutes=5) if window_open else timedelta(days=3))
    await found.save(update_fields=["last_inbound_at"])
    return found


async def queue(who: Customer, message: Any) -> Message:
    row = outbound_row(who, message, now=datetime.now(UTC))
    await row.save()
    return row


async def settled(*rows: Message) -> list[Message]:
    """Wait until none of the rows is due any more (sent, failed or held), then reload them."""

    async def done() -> bool:
        fresh = await Message.filter(id__in=[r.id for r in rows])
        now = datetime.now(UTC)
        return all(
            r.delivery_status != DeliveryStatus.QUEUED
            or (r.next_attempt_at or now) > now + timedelta(seconds=60)
            for r in fresh
        )

    try:
        await eventually(done, within=20)
    except AssertionError:
        fresh = await Message.filter(id__in=[r.id for r in rows])
        raise AssertionError(
            [(r.id, r.delivery_status, r.next_attempt_at, r.error_title, r.attempts) for r in fresh]
        ) from None
    return list(await Message.filter(id__in=[r.id for r in rows]).order_by("id"))


async def sent_to(graph: TestServer, phone: str) -> int:
    return sum(1 for send in await graph_sends(graph) if send[1].lstrip("+") == phone)


def offer(name: str = "Ana") -> Template:
    return Template(name="spring_offer", language="en", body_params=(name,))


async def test_the_budget_holds_marketing_the_shop_starts(
    bot_client: BotFactory, fake_graph: TestServer, tmp_path: Path
) -> None:
    folder = templates_with_offer(tmp_path)
    client = await bot_client(
        f"templates:\n  directory: {folder}\ncosts:\n  monthly_budget: 0.05\n  tables:\n"
        '    - effective_from: 2026-01-01\n      rates: {marketing: {"*": 0.05}}\n'
    )
    await CostEntry.create(  # the month's spend: 0.05 of 0.05
        message_id=10**9,
        customer_id=1,
        market="34",
        message_type="template",
        category="marketing",
        pricing_type="regular",
        at=datetime.now(UTC),
    )
    closed, other, talking = (
        await customer("34600000001", window_open=False),
        await customer("34600000002", window_open=False),
        await customer("34600000003", window_open=True),
    )
    marketing = await queue(closed, offer())
    notice = await queue(other, Template(name="follow_up", language="en", body_params=("Bo",)))  # utility
    reply = await queue(talking, Text(body="Your phone is ready"))
    held, sent_notice, sent_reply = await settled(marketing, notice, reply)
    assert held.delivery_status == DeliveryStatus.QUEUED
    assert held.error_title and held.error_title.startswith("held: the monthly budget is spent")
    assert held.next_attempt_at is not None and held.next_attempt_at > datetime.now(UTC) + timedelta(hours=1)
    assert (sent_notice.delivery_status, sent_reply.delivery_status) == (
        DeliveryStatus.SENT,
        DeliveryStatus.SENT,
    )
    assert await sent_to(fake_graph, "34600000001") == 0
    found = await scrape(client)
    assert value(found, "bot_sends_held_total", reason="budget") >= 1


async def test_the_daily_cap_holds_across_a_restart(bot_client: BotFactory, fake_graph: TestServer) -> None:
    extra = "limits:\n  daily_per_customer: 2\n"
    client = await bot_client(extra)
    ana = await customer("34600000009", window_open=True)
    rows = [await queue(ana, Text(body=f"message {n}")) for n in range(3)]
    first, second, third = await settled(*rows)
    assert (first.delivery_status, second.delivery_status) == (DeliveryStatus.SENT, DeliveryStatus.SENT)
    assert third.delivery_status == DeliveryStatus.QUEUED
    assert third.error_title == "held: 2 messages to this customer today (limits.daily_per_customer)"
    await client.close()  # a restart: nothing of the count lives in memory

    client = await bot_client(extra)  # releases what a dead process had claimed: the held row comes back
    later = await queue(ana, Text(body="one more"))

    shop = ZoneInfo("Europe/Madrid")  # tests/helpers.py write_settings
    tomorrow = datetime.now(shop).date() + timedelta(days=1)

    async def held_again() -> bool:  # until the shop's next midnight (an hour before it, that is soon)
        row = await Message.get(id=third.id)
        return row.next_attempt_at is not None and row.next_attempt_at >= local_midnight(tomorrow, shop)

    await eventually(held_again)
    await asyncio.sleep(1.5)  # a few of the outbox's polls: nothing more goes to her today
    third, later = list(await Message.filter(id__in=[third.id, later.id]).order_by("id"))
    assert third.delivery_status == later.delivery_status == DeliveryStatus.QUEUED
    assert later.error_title is None  # it waits behind the held one: her messages go out in order
    assert await sent_to(fake_graph, "34600000009") == 2


async def test_the_messaging_limit_holds_until_a_new_tier(
    bot_client: BotFactory, fake_graph: TestServer
) -> None:
    client = await bot_client("whatsapp:\n  messaging_limit: 2\n")
    started = [await customer(f"3460000010{n}", window_open=False) for n in range(3)]
    talking = await customer("34600000199", window_open=True)
    in_window = await queue(talking, Template(name="follow_up", language="en", body_params=("Di",)))
    first = await queue(started[0], Template(name="follow_up", language="en", body_params=("A",)))
    second = await queue(started[1], Template(name="follow_up", language="en", body_params=("B",)))
    again = await queue(started[0], Template(name="follow_up", language="en", body_params=("A",)))
    third = await queue(started[2], Template(name="follow_up", language="en", body_params=("C",)))
    rows = await settled(in_window, first, second, again, third)
    assert [r.delivery_status for r in rows[:4]] == [DeliveryStatus.SENT] * 4  # a customer reached twice: one
    assert rows[4].delivery_status == DeliveryStatus.QUEUED
    assert rows[4].error_title == "held: Meta's messaging limit of 2 customers in 24 hours is reached"
    found = await scrape(client)
    assert (value(found, "bot_messaging_limit"), value(found, "bot_messaging_limit_used")) == (2, 2)
    assert value(found, "bot_messaging_limit_headroom") == 0
    costs = await (await client.get("/api/costs", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})).json()
    assert costs["messaging_limit"]["headroom"] == 0 and costs["messaging_limit"]["next_free_at"]

    # Meta raises the portfolio's limit: the held template goes at once
    assert (await post_webhook(client, payload("business_capability_update.json"))).status == 200

    async def went() -> bool:
        return (await Message.get(id=third.id)).delivery_status == DeliveryStatus.SENT

    await eventually(went)
    found = await scrape(client)
    assert (
        value(found, "bot_messaging_limit") == 2000 and value(found, "bot_messaging_limit_headroom") == 1997
    )


@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES_AVAILABLE, reason="no PostgreSQL at 127.0.0.1:5432")
async def test_the_daily_cap_holds_across_two_processes(tmp_path: Path, fake_graph: TestServer) -> None:
    """`bot serve --workers 2`: both claim the same customer's rows at once; 3 go, the rest wait, and
    /metrics (whichever worker answers) adds both workers' counters up."""
    await reset_postgres()
    await create_schema(POSTGRES_URL)
    settings = write_settings(tmp_path, "limits:\n  daily_per_customer: 3\n")
    env = serve_env(settings, POSTGRES_URL, fake_graph, BOT_ADMIN_TOKEN=ADMIN_TOKEN)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # bot serve --workers makes its own
    port = free_port()
    bot = BotProcess(env, port, tmp_path / "bot.log", workers=2)
    try:
        await bot.start()
        await bot.until_workers()
        await init_db(POSTGRES_URL)
        install_test_keys(POSTGRES_URL)
        try:
            async with in_transaction():  # all at once: both workers find them on their next poll
                ana = await customer("34600000077", window_open=True)
                for n in range(8):
                    await queue(ana, Text(body=f"message {n}"))

            async def capped() -> bool:
                sent = await Message.filter(
                    message_direction=Direction.OUTBOUND, delivery_status=DeliveryStatus.SENT
                ).count()
                held = await Message.filter(error_title__startswith="held: 3 messages").count()
                return sent == 3 and held >= 1

            await eventually(capped, within=30)
            await asyncio.sleep(2)  # both workers poll again: still three
            sent = await Message.filter(delivery_status=DeliveryStatus.SENT).count()
        finally:
            await close_db()
        assert sent == 3 and await sent_to(fake_graph, "34600000077") == 3
        async with aiohttp.ClientSession() as session:
            for _ in range(6):  # several scrapes: each worker answers for both
                async with session.get(
                    f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
                ) as answer:
                    assert answer.status == 200
                    parsed = samples(await answer.text())
                sent_counted = value(parsed, "bot_outbound_messages_total", type="text", status="sent")
                assert sent_counted == 3, bot.log_path.read_text()[-2000:]
                assert value(parsed, "bot_sends_held_total", reason="cap") >= 1
    finally:
        await bot.stop()
