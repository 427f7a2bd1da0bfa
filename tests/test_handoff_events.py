"""The panel hears only of what committed: desk events from the inbox's batches, its timers and the
relay go out after the transaction that made them true, and never for one that rolled back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.db import close_db, init_db
from bot.db.claims import claims_for
from bot.db.models import DeliveryStatus, Handoff, HandoffStatus, Message
from bot.engine import ActionContext, ActionRegistry, ActionResult, Engine, load_flows
from bot.handoff.actions import HandoffActions
from bot.handoff.events import EventHub
from bot.handoff.policy import DeskPolicy
from bot.handoff.relay import Relay
from bot.handoff.service import HandoffDesk
from bot.handoff.tokens import create_technician
from bot.spine.inbox import InboxConfig, InboxWorker
from tests.helpers import Clock, make_settings, shop_content, store_inbound, write_flow

FLOW = """
flow: main
start: menu
states:
  menu:
    say: "Hi!"
    on:
      keywords:
        technician: [human]
        when: [when]
        waiting: [wait]
  technician:
    call: handoff
    say: "{wait_text}"
  when:
    call: stamp
    say: "Noted."
    goto: menu
  waiting:
    say: "Take your time."
    on:
      text: menu
      timeout: {after: 30m, goto: technician}
"""
CUSTOMER = "15550007777"
POISONED = "15550006666"
ANA = "15550002001"


class Desk:
    """The inbox wired to a desk and the relay as the server wires them, with the events collected."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.clock = Clock()
        self.hub = EventHub()
        settings = make_settings(tmp_path, database_url)
        self.desk = HandoffDesk(settings, shop_content(settings), self.hub, clock=self.clock)
        registry = ActionRegistry()
        HandoffActions(self.desk, self.clock).register(registry)

        @registry.register("stamp")
        async def stamp(context: ActionContext) -> ActionResult:
            return ActionResult(variables={"when": datetime.now(UTC)})  # not JSON: the write fails

        flows = tmp_path / "flows"
        write_flow(flows, "main.yaml", FLOW)
        self.inbox = InboxWorker(
            Engine(load_flows(flows, registry)),
            claims_for(database_url),
            InboxConfig("en"),
            on_queued=lambda: None,
            clock=self.clock,
            handoff=DeskPolicy(self.desk, Relay(self.desk, self.clock), after_misses=0),
        )
        self.events: asyncio.Queue[dict[str, Any]] = self.hub.subscribe()

    def published(self) -> list[dict[str, Any]]:
        events = []
        while not self.events.empty():
            events.append(self.events.get_nowait())
        return events

    async def settle(self) -> None:
        """Let the inbox run as the server's loop would, until nothing is pending."""
        for _ in range(5):
            await self.inbox.process_batch()


async def test_a_batch_that_rolls_back_publishes_nothing_of_what_it_undid(
    tmp_path: Path, database_url: str
) -> None:
    desk = Desk(tmp_path, database_url)
    await init_db(database_url)
    try:
        await store_inbound(CUSTOMER, "wamid.H1", "human")  # opens a handoff inside the batch ...
        await store_inbound(POISONED, "wamid.X1", "when")  # ... which then fails to write and rolls back
        await desk.settle()
        events = desk.published()
        handoff = await Handoff.get(conversation__customer__wa_id=CUSTOMER)
        # one event for the handoff that exists, none for the one the failed batch opened and undid
        assert [(e["action"], e["handoff_id"]) for e in events if e["type"] == "queue"] == [
            ("waiting", handoff.id)
        ]
        assert (await Message.get(whatsapp_message_id="wamid.X1")).delivery_status == DeliveryStatus.FAILED
        await store_inbound(CUSTOMER, "wamid.H2", "hello")  # the next good batch brings nothing stale along
        await desk.settle()
        assert [e for e in desk.published() if e["type"] == "queue"] == []
    finally:
        await close_db()


async def test_a_handoff_a_timer_opens_is_published(tmp_path: Path, database_url: str) -> None:
    desk = Desk(tmp_path, database_url)
    await init_db(database_url)
    try:
        await store_inbound(CUSTOMER, "wamid.W1", "wait")
        await desk.settle()
        desk.clock.now += timedelta(minutes=31)
        assert await desk.inbox.fire_timers() == 1
        handoff = await Handoff.get(conversation__customer__wa_id=CUSTOMER)
        [event] = desk.published()
        assert (event["type"], event["action"], event["handoff_id"]) == ("queue", "waiting", handoff.id)
    finally:
        await close_db()


async def test_a_claim_from_the_relay_is_published_once_its_batch_commits(
    tmp_path: Path, database_url: str
) -> None:
    desk = Desk(tmp_path, database_url)
    await init_db(database_url)
    try:
        ana, _ = await create_technician("Ana", phone=ANA)
        await store_inbound(CUSTOMER, "wamid.H1", "human")
        await desk.settle()
        assert [e["action"] for e in desk.published()] == ["waiting"]
        await store_inbound(ANA, "wamid.A1", "claim")  # claimed through the relay inside the batch ...
        await store_inbound(
            POISONED, "wamid.X1", "when"
        )  # ... which rolls back: the claim is undone, then redone
        await desk.settle()
        handoff = await Handoff.get(conversation__customer__wa_id=CUSTOMER)
        assert (handoff.status, handoff.technician_id) == (HandoffStatus.CLAIMED, ana.id)
        assert [(e["action"], e["technician_id"]) for e in desk.published() if e["type"] == "queue"] == [
            ("claimed", ana.id)
        ]
    finally:
        await close_db()
