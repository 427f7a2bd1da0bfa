"""bot/db/claims.py is the one place that knows the database: a conversation held while a handoff opens,
on SQLite and PostgreSQL alike, and no dialect branch anywhere else in bot/."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

from bot.db.buckets import DatabaseBuckets
from bot.db.claims import claims_for
from bot.db.models import (
    Conversation,
    ConversationMode,
    Customer,
    DeliveryStatus,
    Direction,
    Handoff,
    Message,
)
from bot.db.transactions import atomic
from bot.handoff.service import open_handoff
from tests.appointments_helpers import database
from tests.helpers import REPO, create_schema

PHONE = "15550002222"
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


async def test_two_handoffs_opening_at_once_make_one(database_url: str) -> None:
    """The second waits for the first's commit, sees its handoff and reuses it: never two open ones."""
    claims = claims_for(database_url)
    async with database(database_url):
        customer = await Customer.create(wa_id=PHONE)
        conversation = await Conversation.create(customer_id=customer.id, variables={})

        first_opened = asyncio.Event()

        async def second() -> bool:
            await first_opened.wait()
            async with atomic():
                _, new = await open_handoff(claims, conversation.id, "misunderstood", NOW)
            return new

        racing = asyncio.create_task(second())  # outside the first's transaction: a transaction of its own
        async with atomic():
            _, first_new = await open_handoff(claims, conversation.id, "asked", NOW)
            first_opened.set()
            done, _ = await asyncio.wait({racing}, timeout=0.5)
            assert not done, "the second opened a handoff while the first held the conversation"
        assert first_new and not await racing
        assert await Handoff.filter(conversation_id=conversation.id).count() == 1
        assert (await Conversation.get(id=conversation.id)).mode == ConversationMode.HUMAN


def test_only_bot_db_knows_the_database() -> None:
    """Which database it is, and how it locks, is asked of bot/db/claims.py, never decided elsewhere."""
    branch = re.compile(r"\bis_sqlite\b|\.dialect\b|\b(Sqlite|Postgres)Claims\b|pg_\w+\(")
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sorted((REPO / "bot").rglob("*.py"))
        if "db" not in path.relative_to(REPO / "bot").parts[:1]
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if branch.search(line)
    ]
    assert found == []


async def test_the_database_buckets_are_one_timeline_for_every_process(database_url: str) -> None:
    """PostgreSQL's shared buckets (SQLite's one process paces in memory): two stores, as two processes
    have, take tokens from one bucket one after the other, never the same slot twice."""
    claims = claims_for(database_url)
    if claims.buckets is None:
        assert claims.one_process
        return
    async with database(database_url):
        first, second = DatabaseBuckets(), DatabaseBuckets()
        ahead = [await first.reserve({"business:x": 10.0}), await second.reserve({"business:x": 10.0})]
        # the second process's tokens start where the first's end: 10 s further ahead (less the
        # milliseconds between the two statements), never at the same slot
        assert 19.0 < ahead[1]["business:x"] <= 20.0
        assert 9.0 < ahead[0]["business:x"] <= 10.0
        both = await first.reserve({"business:x": 1.0, "pair:1555": 6.0})
        assert 20.0 < both["business:x"] <= 21.0 and 5.0 < both["pair:1555"] <= 6.0
        await second.hold("pair:1555", 60.0)
        assert (await first.reserve({"pair:1555": 6.0}))["pair:1555"] > 60.0
        await first.sweep(0.0)  # only buckets full for a while go: these are all ahead
        assert (await first.reserve({"pair:1555": 6.0}))["pair:1555"] > 66.0


async def test_claims_take_a_customers_rows_in_order_past_rows_another_process_holds(
    database_url: str,
) -> None:
    """An inbound row another transaction holds (SKIP LOCKED passes it by) keeps its customer's later
    rows back too: a worker takes a customer's messages up to the first it cannot have."""
    claims = claims_for(database_url)
    if claims.one_process:
        return  # one process: its transactions are exclusive, nothing is held elsewhere
    async with database(database_url):
        rows = [
            await _pending(phone, f"wamid.ORDER.{n}")
            for n, phone in enumerate([PHONE, PHONE, "15550003333", PHONE])
        ]
        holding, held = asyncio.Event(), asyncio.Event()

        async def other_process() -> None:
            async with atomic():
                await Message.filter(id=rows[1].id).select_for_update()
                holding.set()
                await held.wait()

        other = asyncio.create_task(other_process())
        await holding.wait()
        async with atomic():
            taken = [row.whatsapp_message_id for row in await claims.pending_inbound(10)]
        held.set()
        await other
        assert taken == ["wamid.ORDER.0", "wamid.ORDER.2"]  # not ORDER.3: ORDER.1 is before it


async def test_on_a_shared_sqlite_file_the_batch_is_read_first_and_keeps_only_what_is_still_pending(
    tmp_path: Path,
) -> None:
    """`bot serve --workers N` on SQLite: the inbox reads its rows before the write lock; inside the
    transaction only those still pending are taken (an erasure, a replay meanwhile), nothing new."""
    url = f"sqlite://{tmp_path / 'bot.db'}"
    shared, alone = claims_for(url, shared_file=True), claims_for(url)
    await create_schema(url)
    async with database(url):
        rows = [await _pending(PHONE, f"wamid.AHEAD.{n}") for n in range(4)]
        assert await alone.read_pending_inbound(10) is None  # one process: read inside, as ever
        read = await shared.read_pending_inbound(3)
        assert read is not None and [row.id for row in read] == [row.id for row in rows[:3]]
        await Message.filter(id=rows[1].id).update(delivery_status=DeliveryStatus.HANDLED)
        await Message.filter(id=rows[2].id).delete()
        async with atomic():
            taken = await shared.still_pending(read)
        assert [row.whatsapp_message_id for row in taken] == ["wamid.AHEAD.0"]


async def _pending(phone: str, wamid: str) -> Message:
    """An inbound text from `phone`, stored and not handled yet."""
    return await Message.create(
        address=phone,
        message_direction=Direction.INBOUND,
        message_type="text",
        whatsapp_message_id=wamid,
        delivery_status=DeliveryStatus.PENDING,
        received_at=NOW,
    )
