"""SQLite's one connection taken in turns (bot/db/turns.py): the webhook's commit goes before the
workers queued ahead of it, everyone else keeps their order, nobody is lost to a cancellation, and
the intake really asks for the first turn."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tortoise import connections

from bot.db import close_db, init_db
from bot.db.models import Customer, Message
from bot.db.transactions import atomic
from bot.db.turns import ConnectionTurns, first_in_line
from bot.spine.intake import IntakeWriter
from bot.whatsapp.notifications import parse_notification
from tests.helpers import create_schema, install_test_keys, settle, sqlite_trips, text_notification


async def _queue(turns: ConnectionTurns, order: list[str], name: str, *, first: bool = False) -> None:
    async def take() -> None:
        async with turns:
            order.append(name)
            await asyncio.sleep(0)

    if first:
        with first_in_line():
            await take()
    else:
        await take()


async def test_first_in_line_goes_before_those_already_waiting_and_the_rest_keep_their_order() -> None:
    turns = ConnectionTurns()
    order: list[str] = []
    await turns.acquire()
    tasks = [
        asyncio.create_task(_queue(turns, order, "inbox")),
        asyncio.create_task(_queue(turns, order, "claim")),
    ]
    await settle()
    tasks.append(asyncio.create_task(_queue(turns, order, "intake 1", first=True)))
    await settle()
    tasks.append(asyncio.create_task(_queue(turns, order, "results")))
    tasks.append(asyncio.create_task(_queue(turns, order, "intake 2", first=True)))
    await settle()
    assert turns.locked() and order == []
    turns.release()
    await asyncio.gather(*tasks)
    assert order == ["intake 1", "intake 2", "inbox", "claim", "results"]
    assert not turns.locked()


async def test_a_free_lock_is_taken_at_once_and_a_release_of_a_free_lock_is_an_error() -> None:
    turns = ConnectionTurns()
    assert await turns.acquire() is True and turns.locked()
    turns.release()
    assert not turns.locked()
    with pytest.raises(RuntimeError):
        turns.release()


async def test_a_cancelled_waiter_is_skipped_and_one_cancelled_after_its_turn_came_passes_it_on() -> None:
    turns = ConnectionTurns()
    order: list[str] = []
    await turns.acquire()
    gone = asyncio.create_task(_queue(turns, order, "gone", first=True))
    handed = asyncio.create_task(_queue(turns, order, "handed"))
    last = asyncio.create_task(_queue(turns, order, "last"))
    await settle()
    gone.cancel()  # still waiting: leaves the queue
    await settle()
    turns.release()  # hands the lock to `handed`, which is cancelled before it runs
    handed.cancel()
    await asyncio.gather(gone, handed, last, return_exceptions=True)
    assert gone.cancelled() and handed.cancelled()
    assert order == ["last"] and not turns.locked()


@pytest.mark.usefixtures("fresh_executor_cache")
async def test_the_intakes_commit_waits_for_no_worker_queued_before_it(tmp_path: Path) -> None:
    """On the real SQLite client: while one transaction holds the connection, a worker's transaction
    queues, then the intake's group commit of a webhook; the webhook's message is committed first."""
    url = f"sqlite://{tmp_path / 'bot.db'}"
    await create_schema(url)
    install_test_keys(url)
    await init_db(url)
    try:
        client = connections.get("default")
        assert isinstance(client._lock, ConnectionTurns)
        order: list[str] = []
        release = asyncio.Event()

        async def holder() -> None:
            async with atomic():
                await Customer.create(wa_id="100")
                await release.wait()
            order.append("holder")

        async def write(phone: str, name: str) -> None:
            async with atomic():
                await Customer.create(wa_id=phone)
            order.append(name)

        async def webhook() -> None:
            await writer.write(
                parse_notification(json.dumps(text_notification("15550003000", "wamid.T", "hi")).encode())
            )
            order.append("intake")

        writer = IntakeWriter(on_committed=lambda: None)
        writer.start()
        try:
            held = asyncio.create_task(holder())
            await settle()
            worker = asyncio.create_task(write("200", "worker"))
            await settle()
            answered = asyncio.create_task(webhook())
            for _ in range(20):
                await asyncio.sleep(0)
            release.set()
            await asyncio.gather(held, worker, answered)
        finally:
            await writer.stop()
        assert order == ["holder", "intake", "worker"]
        assert await Message.filter(whatsapp_message_id="wamid.T").exists()
        assert sorted(c.wa_id for c in await Customer.all()) == ["100", "15550003000", "200"]
    finally:
        await close_db()


@pytest.mark.usefixtures("fresh_executor_cache")
async def test_a_webhook_of_messages_is_committed_in_the_trip_of_its_insert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intake's usual commit holds the connection for two trips to SQLite's thread (BEGIN with the
    senders' lookup, then the INSERT with its COMMIT), and the webhook is answered only after the second."""
    url = f"sqlite://{tmp_path / 'bot.db'}"
    await create_schema(url)
    install_test_keys(url)
    await init_db(url)
    try:
        writer = IntakeWriter(on_committed=lambda: None)
        writer.start()
        try:
            async with sqlite_trips(monkeypatch) as trips:
                for wamid in ("wamid.NEW", "wamid.T"):  # the first makes the customer, the second is usual
                    trips.clear()
                    await writer.write(
                        parse_notification(json.dumps(text_notification("15550003000", wamid, "hi")).encode())
                    )
                answered = list(trips)
        finally:
            await writer.stop()
        assert answered == [["BEGIN", "SELECT"], ["INSERT", "COMMIT"]]
        assert await Message.filter(whatsapp_message_id="wamid.T").exists()
    finally:
        await close_db()
