"""A transaction's writes gathered and run together (bot/db/writes.Writes): on SQLite in one trip to its
thread with the COMMIT, on both databases in order, all or nothing; and the inbox's batch uses it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from tortoise.exceptions import IntegrityError

from bot.db import close_db, init_db
from bot.db.claims import claims_for
from bot.db.models import Conversation, ConversationStep, Customer, DeliveryStatus, Direction, Message
from bot.db.transactions import atomic
from bot.db.writes import Writes
from bot.engine import ActionRegistry, Engine, load_flows
from bot.spine.inbox import InboxConfig, InboxWorker
from tests.helpers import TEMPLATES, create_schema, install_test_keys, sqlite_trips, store_inbound, write_flow

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
STEP = ["conversation_id", "flow", "state", "at"]


async def _conversation() -> Conversation:
    customer = await Customer.create(wa_id="15550001001")
    return await Conversation.create(customer=customer, flow="main", state="menu")


async def test_gathered_writes_run_in_order_and_commit_together(database_url: str) -> None:
    """An update, an insert and a hand-written statement gathered, then run: each sees the one before
    it (the DELETE removes the step the INSERT made first), and all of them are committed."""
    await init_db(database_url)
    try:
        conversation = await _conversation()
        async with atomic():
            conversation.state = "asked"
            writes = Writes()
            await writes.update(Conversation, [conversation], ["state", "updated_at"])
            await writes.insert(
                ConversationStep,
                STEP,
                [[conversation.id, "main", "menu", NOW], [conversation.id, "main", "asked", NOW]],
            )
            writes.execute('DELETE FROM "conversation_step" WHERE "state" = ?', ["menu"])
            assert writes
            await writes.run(last=True)
            assert not writes  # run once: forgotten
        assert (await Conversation.get(id=conversation.id)).state == "asked"
        assert [s.state for s in await ConversationStep.all()] == ["asked"]
    finally:
        await close_db()


async def test_a_failing_gathered_write_leaves_nothing_of_its_transaction(database_url: str) -> None:
    """The second statement breaks a unique constraint: Tortoise's IntegrityError, as the client's own
    calls raise it, and the first statement's change and the transaction's earlier ones are gone."""
    await init_db(database_url)
    try:
        conversation = await _conversation()
        with pytest.raises(IntegrityError):
            async with atomic():
                await Customer.create(wa_id="15550001002")
                conversation.state = "asked"
                writes = Writes()
                await writes.update(Conversation, [conversation], ["state"])
                await writes.insert(
                    Customer, ["wa_id", "created_at", "updated_at"], [["15550001001", NOW, NOW]]
                )
                await writes.run(last=True)
        assert (await Conversation.get(id=conversation.id)).state == "menu"
        assert await Customer.filter(wa_id="15550001002").count() == 0
    finally:
        await close_db()


async def test_on_sqlite_the_writes_and_the_commit_are_one_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every trip through aiosqlite's thread waits for a turn of the event loop while the connection is
    held: three statements and the COMMIT go in one trip; a failing one goes with what ran before it
    in its trip, and the ROLLBACK follows."""
    url = f"sqlite://{tmp_path / 'bot.db'}"
    await create_schema(url)
    install_test_keys(url)
    await init_db(url)
    try:
        conversation = await _conversation()
        async with sqlite_trips(monkeypatch) as trips:
            async with atomic():
                await Conversation.get(id=conversation.id)
                writes = Writes()
                await writes.update(Conversation, [conversation], ["state", "updated_at"])
                await writes.insert(ConversationStep, STEP, [[conversation.id, "main", "menu", NOW]])
                writes.execute(
                    'UPDATE "conversation" SET "mode" = ? WHERE "id" = ?', ["human", conversation.id]
                )
                await writes.run(last=True)
            assert trips == [["BEGIN", "SELECT"], ["UPDATE", "INSERT", "UPDATE", "COMMIT"]]
            trips.clear()
            with pytest.raises(IntegrityError):
                async with atomic():
                    writes = Writes()
                    await writes.insert(ConversationStep, STEP, [[conversation.id, "main", "asked", NOW]])
                    await writes.insert(
                        Customer, ["wa_id", "created_at", "updated_at"], [["15550001001", NOW, NOW]]
                    )
                    await writes.run(last=True)
            assert trips == [["BEGIN", "INSERT", "INSERT"], ["ROLLBACK"]]
        assert [s.state for s in await ConversationStep.all()] == ["menu"]
        assert (await Conversation.get(id=conversation.id)).mode == "human"
    finally:
        await close_db()


FLOW = """
flow: main
start: menu
states:
  menu:
    say: "Type 'hours' for our opening hours."
    on:
      keywords:
        hours: [hours]
  hours:
    say: "Mon-Sat 10:00-19:00."
    goto: menu
"""


async def test_an_inbox_batch_writes_everything_and_commits_in_its_last_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of three customers' messages: the reads go one trip each, then the customers, the
    conversations, the replies, the funnel steps and the rows marked handled go with the COMMIT in one
    trip; and every message is handled with its reply queued."""
    url = f"sqlite://{tmp_path / 'bot.db'}"
    await create_schema(url)
    install_test_keys(url)
    write_flow(tmp_path / "flows", "main.yaml", FLOW)
    engine = Engine(load_flows(tmp_path / "flows", ActionRegistry(), TEMPLATES))
    await init_db(url)
    try:
        worker = InboxWorker(engine, claims_for(url), InboxConfig("en"), on_queued=lambda: None)
        for n, text in enumerate(["hello", "hours", "hi"]):
            await store_inbound(f"1555000200{n}", f"wamid.W{n}", text)
        async with sqlite_trips(monkeypatch) as trips:
            assert await worker.process_batch() == 3
        committing = [n for n, trip in enumerate(trips) if "COMMIT" in trip]
        assert committing == [len(trips) - 1]
        assert trips[-1][:2] == ["UPDATE", "UPDATE"]  # customers, conversations
        assert trips[-1][-3:] == ["INSERT", "UPDATE", "COMMIT"]  # steps, rows handled, the commit
        assert trips[-1].count("INSERT") >= 2  # the replies too
        inbound = await Message.filter(message_direction=Direction.INBOUND)
        assert {row.delivery_status for row in inbound} == {DeliveryStatus.HANDLED}
        replies = await Message.filter(message_direction=Direction.OUTBOUND).order_by("id")
        assert {row.reply_to for row in replies} == {"wamid.W0", "wamid.W1", "wamid.W2"}
        assert "Mon-Sat 10:00-19:00." in [
            row.message_content for row in replies if row.reply_to == "wamid.W1"
        ]
    finally:
        await close_db()
