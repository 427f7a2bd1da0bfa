"""The inbox worker on its own: a failing action costs one apology, never the conversation."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.db import close_db, init_db
from bot.db.claims import claims_for
from bot.db.models import Conversation, DeliveryStatus, Direction, Message
from bot.engine import ActionContext, ActionRegistry, ActionResult, Engine, load_flows
from bot.spine.inbox import InboxConfig, InboxWorker
from bot.spine.intake import inbound_row
from bot.whatsapp.notifications import parse_notification
from tests.helpers import TEMPLATES, store_inbound, text_notification, write_flow

APOLOGY = "Sorry, something went wrong on our side. A member of our team will look into it."
"""templates/texts/engine.yaml's `apology` in English."""

FLOW = """
flow: main
start: menu
states:
  menu:
    say: "Type 'check' to look it up."
    on:
      keywords:
        checking: [check]
  checking:
    call: lookup
    say: "Found it."
    goto: menu
"""


async def test_an_action_that_fails_gets_an_apology_and_keeps_the_state(
    tmp_path: Path, database_url: str
) -> None:
    registry = ActionRegistry()

    @registry.register("lookup")
    async def lookup(context: ActionContext) -> ActionResult | None:
        raise RuntimeError("the shop's system is down")

    write_flow(tmp_path / "flows", "main.yaml", FLOW)
    engine = Engine(load_flows(tmp_path / "flows", registry, TEMPLATES))  # its texts: the apology
    queued: list[bool] = []
    worker = InboxWorker(
        engine, claims_for(database_url), InboxConfig("en"), on_queued=lambda: queued.append(True)
    )
    await init_db(database_url)
    try:
        now = datetime.now(UTC)
        for wamid, text in (("wamid.A1", "hello"), ("wamid.A2", "check")):
            raw = json.dumps(text_notification("15550008888", wamid, text)).encode()
            [item] = parse_notification(raw).inbound_messages()
            await inbound_row(item, now).save()
        assert await worker.process_batch() == 2
        assert await worker.process_batch() == 0  # nothing left: each message handled once
        failed = await Message.get(whatsapp_message_id="wamid.A2")
        assert failed.delivery_status == DeliveryStatus.HANDLED
        assert failed.error_title is not None and "the shop's system is down" in failed.error_title
        [apology] = await Message.filter(reply_to="wamid.A2", message_direction=Direction.OUTBOUND)
        assert apology.message_content == APOLOGY
        conversation = await Conversation.get()
        assert (conversation.flow, conversation.state) == ("main", "menu")  # where it was before the failure
        assert queued
    finally:
        await close_db()


POISON_FLOW = """
flow: main
start: menu
states:
  menu:
    say: "Hi! Type 'when' or 'grab'."
    on:
      keywords:
        when: [when]
        grab: [grab]
  when:
    call: stamp
    say: "Noted."
    goto: menu
  grab:
    call: grab
    say: "Got it."
    goto: menu
"""
TAKEN_WAMID = "wamid.TAKEN"


def poison_registry() -> ActionRegistry:
    """`stamp` sets a variable that is no JSON (the batch's write fails); `grab` inserts a row that
    breaks a unique constraint (on PostgreSQL, that aborts the whole transaction)."""
    registry = ActionRegistry()

    @registry.register("stamp")
    async def stamp(context: ActionContext) -> ActionResult:
        return ActionResult(variables={"when": datetime.now(UTC)})

    @registry.register("grab")
    async def grab(context: ActionContext) -> ActionResult:
        await Message.create(
            address=str(context.customer.wa_id),
            customer_id=context.customer.id,
            message_direction=Direction.OUTBOUND,
            message_type="text",
            delivery_status=DeliveryStatus.QUEUED,
            whatsapp_message_id=TAKEN_WAMID,
        )
        return ActionResult()

    return registry


async def poison_worker(tmp_path: Path, database_url: str, flow: str = POISON_FLOW) -> InboxWorker:
    write_flow(tmp_path / "flows", "main.yaml", flow)
    engine = Engine(load_flows(tmp_path / "flows", poison_registry(), TEMPLATES))
    await init_db(database_url)
    return InboxWorker(engine, claims_for(database_url), InboxConfig("en"), on_queued=lambda: None)


async def status(wamid: str) -> tuple[DeliveryStatus, int]:
    row = await Message.get(whatsapp_message_id=wamid)
    return row.delivery_status, row.attempts


async def replies_to(wamid: str) -> list[str | None]:
    rows = await Message.filter(reply_to=wamid, message_direction=Direction.OUTBOUND).order_by("id")
    return [row.message_content for row in rows]


async def test_a_row_that_cannot_be_written_is_parked_and_holds_up_no_one(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    worker = await poison_worker(tmp_path, database_url)
    try:
        await store_inbound("15550000001", "wamid.P1", "when")  # its variables cannot be stored
        await store_inbound("15550000001", "wamid.P2", "hello")  # the same customer, after it
        await store_inbound("15550000002", "wamid.B1", "hello")
        await store_inbound("15550000003", "wamid.C1", "hello")
        caplog.set_level(logging.INFO, logger="bot.spine.inbox")

        assert await worker.process_batch() == 2  # the batch failed; one by one the others went through
        assert await status("wamid.B1") == (DeliveryStatus.HANDLED, 0)
        assert await status("wamid.C1") == (DeliveryStatus.HANDLED, 0)
        assert await replies_to("wamid.B1") == ["Hi! Type 'when' or 'grab'."]
        assert await status("wamid.P1") == (DeliveryStatus.PENDING, 1)  # counted, committed
        assert await status("wamid.P2") == (DeliveryStatus.PENDING, 0)  # waits: order is kept

        await store_inbound(
            "15550000002", "wamid.B2", "hello"
        )  # other customers keep being answered meanwhile
        assert await worker.process_batch() == 1
        assert await status("wamid.B2") == (DeliveryStatus.HANDLED, 0)
        assert await status("wamid.P1") == (DeliveryStatus.PENDING, 2)

        assert await worker.process_batch() == 2  # the third attempt parks it; P2 is handled after it
        parked = await Message.get(whatsapp_message_id="wamid.P1")
        assert (parked.delivery_status, parked.attempts) == (DeliveryStatus.FAILED, 3)
        assert parked.error_title and "not JSON serializable" in parked.error_title
        assert parked.processed_at is not None and parked.failed_at is not None
        assert await replies_to("wamid.P1") == [APOLOGY]  # told once, not per attempt
        assert await status("wamid.P2") == (DeliveryStatus.HANDLED, 0)
        assert await replies_to("wamid.P2") == ["Hi! Type 'when' or 'grab'."]
        assert await worker.process_batch() == 0  # parked: never tried again

        [gave_up] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert "wamid.P1" in gave_up.getMessage() and "3 attempts" in gave_up.getMessage()
        assert "when" not in gave_up.getMessage().replace("wamid", "")  # never the customer's text
    finally:
        await close_db()


async def test_an_action_that_breaks_a_constraint_costs_its_customer_an_apology_only(
    tmp_path: Path, database_url: str
) -> None:
    """On PostgreSQL the failed INSERT aborts the batch's transaction: without isolation, every customer
    in the batch would wait for ever."""
    worker = await poison_worker(tmp_path, database_url)
    try:
        await Message.create(
            address="15550009999",
            message_direction=Direction.INBOUND,
            message_type="text",
            delivery_status=DeliveryStatus.HANDLED,
            whatsapp_message_id=TAKEN_WAMID,
        )
        await store_inbound("15550000001", "wamid.G1", "grab")
        await store_inbound("15550000002", "wamid.B1", "hello")
        for _ in range(3):
            await worker.process_batch()
        grabbed = await Message.get(whatsapp_message_id="wamid.G1")
        assert grabbed.delivery_status == DeliveryStatus.HANDLED  # handled: the engine error is its answer
        assert grabbed.error_title and "engine error" in grabbed.error_title
        assert await replies_to("wamid.G1") == [APOLOGY]
        assert await status("wamid.B1") == (DeliveryStatus.HANDLED, 0)
        assert await replies_to("wamid.B1") == ["Hi! Type 'when' or 'grab'."]
    finally:
        await close_db()


async def test_a_write_that_breaks_a_column_limit_is_parked(tmp_path: Path, database_url: str) -> None:
    long_state = "s" * 129  # conversation.state is VARCHAR(128)
    flow = f"""
flow: main
start: menu
states:
  menu:
    say: "Hi!"
    on:
      keywords:
        {long_state}: [deep]
  {long_state}:
    say: "Deep."
"""
    worker = await poison_worker(tmp_path, database_url, flow)
    try:
        await store_inbound("15550000001", "wamid.D1", "deep")
        await store_inbound("15550000002", "wamid.B1", "hello")
        for _ in range(3):
            await worker.process_batch()
        parked = await Message.get(whatsapp_message_id="wamid.D1")
        assert (parked.delivery_status, parked.attempts) == (DeliveryStatus.FAILED, 3)
        assert parked.error_title and "129 > 128" in parked.error_title
        assert await replies_to("wamid.D1") == [APOLOGY]
        assert await status("wamid.B1") == (DeliveryStatus.HANDLED, 0)
    finally:
        await close_db()


async def test_the_worker_goes_on_at_once_only_after_a_full_batch(tmp_path: Path, database_url: str) -> None:
    """A batch that read fewer rows than it may took everything pending: the loop then waits for the
    intake's wake (or the poll) instead of spending a transaction to find nothing; after a full batch
    it goes on at once, and nothing is left behind either way."""
    write_flow(tmp_path / "flows", "main.yaml", POISON_FLOW)
    engine = Engine(load_flows(tmp_path / "flows", poison_registry(), TEMPLATES))
    await init_db(database_url)
    worker = InboxWorker(
        engine, claims_for(database_url), InboxConfig("en", batch_size=2), on_queued=lambda: None
    )
    try:
        for n in range(3):
            await store_inbound(f"1555000010{n}", f"wamid.F{n}", "hello")
        assert await worker._step() is True  # two of three: more may be waiting
        assert await worker._step() is False  # the last one: nothing more
        assert [await status(f"wamid.F{n}") for n in range(3)] == [(DeliveryStatus.HANDLED, 0)] * 3
        assert await worker._step() is False
    finally:
        await close_db()
