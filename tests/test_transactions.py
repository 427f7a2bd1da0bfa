"""`atomic()` and `on_commit()` on both databases: work waits for the outermost commit, and goes with
the block it was registered in when that block rolls back (a savepoint takes only its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite.core
import pytest

from bot.db import close_db, init_db
from bot.db.models import Customer
from bot.db.transactions import atomic, on_commit
from tests.helpers import create_schema


class Boom(Exception):
    pass


async def test_work_runs_after_the_outermost_commit_and_only_for_what_committed(database_url: str) -> None:
    await init_db(database_url)
    try:
        ran: list[str] = []

        async def seen(phone: str) -> bool:
            return await Customer.exists(wa_id=phone)

        async with atomic():
            await Customer.create(wa_id="1")
            on_commit(lambda: ran.append("outer"))
            async with atomic():  # a savepoint that is released: its work waits for the outer commit
                await Customer.create(wa_id="2")
                on_commit(lambda: ran.append("released"))
            with pytest.raises(Boom):
                async with atomic():  # a savepoint rolled back: its row and its work are gone
                    await Customer.create(wa_id="3")
                    on_commit(lambda: ran.append("rolled back"))
                    raise Boom
            assert ran == []
        assert ran == ["outer", "released"]
        assert [await seen(p) for p in "123"] == [True, True, False]

        with pytest.raises(Boom):
            async with atomic():
                await Customer.create(wa_id="4")
                on_commit(lambda: ran.append("never"))
                raise Boom
        assert ran == ["outer", "released"] and not await seen("4")

        on_commit(lambda: ran.append("now"))  # outside any transaction: at once
        assert ran[-1] == "now"
    finally:
        await close_db()


async def test_a_sqlite_transaction_is_begin_its_statements_and_one_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every trip through aiosqlite's thread is a thread switch and an event-loop wake-up: a transaction
    of one INSERT costs BEGIN, the INSERT and COMMIT (Tortoise's own client commits before BEGIN too), and
    what it wrote is committed, and what a failed one wrote is not."""
    url = f"sqlite://{tmp_path / 'bot.db'}"
    await create_schema(url)
    await init_db(url)
    try:
        calls: list[str] = []
        original = aiosqlite.core.Connection._execute

        async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(args[0].split()[0] if args and isinstance(args[0], str) else fn.__name__)
            return await original(self, fn, *args, **kwargs)

        monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)
        async with atomic():
            await Customer.create(wa_id="1")
        assert calls == ["BEGIN", "INSERT", "commit"]
        with pytest.raises(Boom):
            async with atomic():
                await Customer.create(wa_id="2")
                raise Boom
        monkeypatch.undo()
        assert [c.wa_id for c in await Customer.all()] == ["1"]
    finally:
        await close_db()
