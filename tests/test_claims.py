"""bot/db/claims.py is the one place that knows the database: a conversation held while a handoff opens,
on SQLite and PostgreSQL alike, and no dialect branch anywhere else in bot/."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from bot.db.claims import claims_for
from bot.db.models import Conversation, ConversationMode, Customer, Handoff
from bot.db.transactions import atomic
from bot.handoff.service import open_handoff
from tests.appointments_helpers import database
from tests.helpers import REPO

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
