"""`atomic()` and `on_commit()` on both databases: work waits for the outermost commit, and goes with
the block it was registered in when that block rolls back (a savepoint takes only its own)."""

from __future__ import annotations

import pytest

from bot.db import close_db, init_db
from bot.db.models import Customer
from bot.db.transactions import atomic, on_commit


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
