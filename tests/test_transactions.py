"""`atomic()` and `on_commit()` on both databases: work waits for the outermost commit, and goes with
the block it was registered in when that block rolls back (a savepoint takes only its own)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite.core
import pytest
from tortoise.exceptions import IntegrityError, TransactionManagementError

from bot.db import close_db, init_db
from bot.db.models import Customer
from bot.db.transactions import atomic, commits_with_next_statement, on_commit
from bot.db.writes import insert_rows
from tests.helpers import create_schema, sqlite_trips

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


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


async def test_a_sqlite_transaction_is_two_trips_begin_with_its_first_statement_then_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every trip through aiosqlite's thread is a thread switch and an event-loop wake-up, and the one
    connection stays held while it waits: a transaction of one INSERT costs two trips (BEGIN with the
    INSERT, then COMMIT; Tortoise's own client makes four), one that made no statement none, and what a
    committed one wrote is there, what a failed one wrote is not."""
    url = f"sqlite://{tmp_path / 'bot.db'}"
    await create_schema(url)
    await init_db(url)
    try:
        async with sqlite_trips(monkeypatch) as trips:
            async with atomic():
                await Customer.create(wa_id="1")
            assert trips == [["BEGIN", "INSERT", "SELECT"], ["COMMIT"]]  # SELECT: the new id
            trips.clear()
            async with atomic():
                pass
            assert trips == []
            with pytest.raises(Boom):
                async with atomic():
                    await Customer.create(wa_id="2")
                    raise Boom
            assert trips == [["BEGIN", "INSERT", "SELECT"], ["ROLLBACK"]]
        assert [c.wa_id for c in await Customer.all()] == ["1"]
    finally:
        await close_db()


async def test_a_last_statement_commits_its_transaction_with_it_and_nothing_may_follow(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`commits_with_next_statement()`: on SQLite the INSERT, its BEGIN and its COMMIT are one trip;
    on both databases what it wrote is committed, a failing last statement leaves nothing of its
    transaction, and on SQLite a statement after the last one is refused, not run outside it."""
    await init_db(database_url)
    try:
        trips: list[str] = []
        original = aiosqlite.core.Connection._execute

        async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
            trips.append(getattr(fn, "__name__", "?"))
            return await original(self, fn, *args, **kwargs)

        monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)
        async with atomic():
            await Customer.create(wa_id="1")
            commits_with_next_statement()
            await insert_rows(Customer, ["wa_id", "created_at", "updated_at"], [["2", NOW, NOW]])
        sqlite = database_url.startswith("sqlite")
        assert trips == (["in_one_trip", "in_one_trip"] if sqlite else [])  # BEGIN + 1, 2 + COMMIT
        with pytest.raises(IntegrityError):
            async with atomic():
                await Customer.create(wa_id="3")
                await insert_rows(
                    Customer, ["wa_id", "created_at", "updated_at"], [["1", NOW, NOW]], last=True
                )
        if sqlite:
            with pytest.raises(TransactionManagementError):
                async with atomic():
                    await Customer.create(wa_id="4")
                    commits_with_next_statement()
                    await Customer.create(wa_id="5")
                    await Customer.create(wa_id="6")
        monkeypatch.undo()
        assert sorted(c.wa_id for c in await Customer.all()) == (
            ["1", "2", "4", "5"] if sqlite else ["1", "2"]
        )
    finally:
        await close_db()
