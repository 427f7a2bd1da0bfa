"""The inbox worker on its own: a failing action costs one apology, never the conversation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from bot.db import close_db, init_db
from bot.db.claims import claims_for
from bot.db.models import Conversation, DeliveryStatus, Direction, Message
from bot.engine import ActionContext, ActionRegistry, ActionResult, Engine, load_flows
from bot.inbox import InboxConfig, InboxWorker
from bot.intake import inbound_row
from bot.whatsapp.types import parse_notification
from tests.helpers import REPO, text_notification

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

    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "main.yaml").write_text(FLOW)
    engine = Engine(load_flows(tmp_path / "flows", registry, REPO / "templates"))  # its texts: the apology
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
        assert failed.delivery_status == DeliveryStatus.DELIVERED
        assert failed.error_title is not None and "the shop's system is down" in failed.error_title
        [apology] = await Message.filter(reply_to="wamid.A2", message_direction=Direction.OUTBOUND)
        assert apology.message_content == (
            "Sorry, something went wrong on our side. A member of our team will look into it."
        )
        conversation = await Conversation.get()
        assert (conversation.flow, conversation.state) == ("main", "menu")  # where it was before the failure
        assert queued
    finally:
        await close_db()
