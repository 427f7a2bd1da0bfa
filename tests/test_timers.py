"""`on: timeout` end to end through the database: the timer is stored with the state, fires once when
due, is replaced when the customer writes, and never fires for a conversation that has moved on."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.db import close_db, init_db
from bot.db.claims import claims_for
from bot.db.models import Conversation, ConversationMode, ConversationTimer, Customer, Direction, Message
from bot.engine import ActionContext, ActionRegistry, ActionResult, Engine, load_flows
from bot.spine.inbox import InboxConfig, InboxWorker
from bot.spine.intake import inbound_row
from bot.whatsapp.notifications import parse_notification
from tests.helpers import Clock, text_notification, write_flow

FLOW = """
flow: main
start: menu
states:
  menu:
    say: "Hi! Type help."
    on:
      keywords:
        helping: [help]
  helping:
    say: "What's wrong with the phone?"
    on:
      text: menu
      timeout: {after: 30m, goto: gave_up}
  gave_up:
    say: "No rush: type help whenever you're ready."
    goto: menu
"""
PHONE = "15550007777"
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


async def start(tmp_path: Path, database_url: str, clock: Clock) -> InboxWorker:
    write_flow(tmp_path / "flows", "main.yaml", FLOW)
    await init_db(database_url)
    engine = Engine(load_flows(tmp_path / "flows"))
    return InboxWorker(
        engine, claims_for(database_url), InboxConfig("en"), on_queued=lambda: None, clock=clock
    )


async def customer_writes(worker: InboxWorker, clock: Clock, wamid: str, text: str) -> None:
    raw = json.dumps(text_notification(PHONE, wamid, text)).encode()
    [item] = parse_notification(raw).inbound_messages()
    await inbound_row(item, clock.now).save()
    assert await worker.process_batch() == 1


async def bot_said(since: int = 0) -> list[str]:
    rows = await Message.filter(message_direction=Direction.OUTBOUND, id__gt=since).order_by("id")
    return [row.message_content or "" for row in rows]


async def test_a_timeout_fires_once_when_due(tmp_path: Path, database_url: str) -> None:
    clock = Clock(START)
    worker = await start(tmp_path, database_url, clock)
    try:
        await customer_writes(worker, clock, "wamid.T1", "hi")
        await customer_writes(worker, clock, "wamid.T2", "help")
        timer = await ConversationTimer.get()
        assert (timer.state, timer.due_at) == ("helping", clock.now + timedelta(minutes=30))
        clock.now += timedelta(minutes=29)
        assert await worker.fire_timers() == 0
        clock.now += timedelta(minutes=2)
        assert await worker.fire_timers() == 1
        assert (await bot_said())[-2:] == ["No rush: type help whenever you're ready.", "Hi! Type help."]
        conversation = await Conversation.get()
        assert (conversation.flow, conversation.state) == ("main", "menu")
        assert await ConversationTimer.all().count() == 0  # menu has no timeout
        assert await worker.fire_timers() == 0  # fired once only
    finally:
        await close_db()


async def test_a_customer_message_replaces_the_timer(tmp_path: Path, database_url: str) -> None:
    clock = Clock(START)
    worker = await start(tmp_path, database_url, clock)
    try:
        await customer_writes(worker, clock, "wamid.R1", "hi")
        await customer_writes(worker, clock, "wamid.R2", "help")
        clock.now += timedelta(minutes=20)
        await customer_writes(worker, clock, "wamid.R3", "the screen")  # back to menu: no timer
        assert await ConversationTimer.all().count() == 0
        await customer_writes(worker, clock, "wamid.R4", "help")  # a new 30 minutes from now
        [timer] = await ConversationTimer.all()
        assert timer.due_at == clock.now + timedelta(minutes=30)
        clock.now += timedelta(minutes=15)
        assert await worker.fire_timers() == 0
    finally:
        await close_db()


async def test_a_timer_is_dropped_when_a_person_has_the_conversation(
    tmp_path: Path, database_url: str
) -> None:
    clock = Clock(START)
    worker = await start(tmp_path, database_url, clock)
    try:
        await customer_writes(worker, clock, "wamid.H1", "hi")
        await customer_writes(worker, clock, "wamid.H2", "help")
        said = len(await bot_said())
        await Conversation.filter(customer__wa_id=PHONE).update(mode=ConversationMode.HUMAN)
        clock.now += timedelta(hours=1)
        assert await worker.fire_timers() == 0
        assert len(await bot_said()) == said
        assert await ConversationTimer.all().count() == 0
        assert (await Customer.get(wa_id=PHONE)).last_inbound_at is not None
    finally:
        await close_db()


POISON_FLOW = """
flow: main
start: menu
states:
  menu:
    say: "Hi! Type help or later."
    on:
      keywords:
        helping: [help]
        later: [later]
  helping:
    say: "What's wrong with the phone?"
    on:
      text: menu
      timeout: {after: 30m, goto: gave_up}
  gave_up:
    say: "No rush: type help whenever you're ready."
    goto: menu
  later:
    say: "We'll check on you."
    on:
      text: menu
      timeout: {after: 30m, goto: stamped}
  stamped:
    call: stamp
    say: "Checked."
    goto: menu
"""


async def test_a_timer_that_cannot_be_written_is_dropped_and_the_others_fire(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry = ActionRegistry()

    @registry.register("stamp")
    async def stamp(context: ActionContext) -> ActionResult:
        return ActionResult(variables={"when": datetime.now(UTC)})  # not JSON: the write fails

    write_flow(tmp_path / "flows", "main.yaml", POISON_FLOW)
    await init_db(database_url)
    clock = Clock(START)
    worker = InboxWorker(
        Engine(load_flows(tmp_path / "flows", registry)),
        claims_for(database_url),
        InboxConfig("en"),
        on_queued=lambda: None,
        clock=clock,
    )
    try:
        for phone, text in (("15550000001", "later"), ("15550000002", "help")):
            for n, said in enumerate(("hi", text)):
                raw = json.dumps(text_notification(phone, f"wamid.{phone}.{n}", said)).encode()
                [item] = parse_notification(raw).inbound_messages()
                await inbound_row(item, clock.now).save()
        assert await worker.process_batch() == 4
        assert await ConversationTimer.all().count() == 2
        clock.now += timedelta(minutes=31)
        caplog.set_level(logging.INFO, logger="bot.spine.inbox")
        assert await worker.fire_timers() == 1  # the good one moved; the bad one is dropped
        fine = await Conversation.get(customer__wa_id="15550000002")
        assert (fine.flow, fine.state) == ("main", "menu")
        stuck = await Conversation.get(customer__wa_id="15550000001")
        assert (stuck.flow, stuck.state) == ("main", "later")  # as it was
        assert await ConversationTimer.all().count() == 0
        assert "No rush: type help whenever you're ready." in await bot_said()
        [dropped] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert "dropped the timer" in dropped.getMessage()
        assert await worker.fire_timers() == 0
    finally:
        await close_db()
