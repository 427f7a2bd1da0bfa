"""Group commit: a request whose commit fails fails alone; the others of its batch are stored."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tortoise import connections

from bot.db import close_db, init_db, is_sqlite
from bot.db.models import EarlyStatus, Message
from bot.spine.intake import INBOUND_COLUMNS, IntakeWriter, NotStored
from bot.whatsapp.notifications import parse_notification
from tests.helpers import payload, text_notification

POISON = "wamid.POISON"


async def _refuse_the_poison(database_url: str) -> None:
    """A trigger that fails any insert of one wamid: a commit failure no parsing limit foresees (a full
    disk, a constraint added by hand), made on demand in the real database."""
    connection = connections.get("default")
    if is_sqlite(database_url):
        await connection.execute_script(
            f"CREATE TRIGGER refuse_poison BEFORE INSERT ON message WHEN NEW.whatsapp_message_id = '{POISON}'"
            " BEGIN SELECT RAISE(ABORT, 'poisoned'); END;"
        )
        return
    await connection.execute_script(
        f"""
        CREATE FUNCTION refuse_poison() RETURNS trigger AS $$
        BEGIN
            IF NEW.whatsapp_message_id = '{POISON}' THEN RAISE EXCEPTION 'poisoned'; END IF;
            RETURN NEW;
        END $$ LANGUAGE plpgsql;
        CREATE TRIGGER refuse_poison BEFORE INSERT ON message
            FOR EACH ROW EXECUTE FUNCTION refuse_poison();
        """
    )


def _notification(body: dict[str, Any]) -> Any:
    return parse_notification(json.dumps(body).encode())


async def test_a_failing_request_fails_alone_and_the_rest_of_its_batch_is_stored(database_url: str) -> None:
    await init_db(database_url)
    try:
        await _refuse_the_poison(database_url)
        committed: list[bool] = []
        statuses: list[int] = []
        writer = IntakeWriter(
            on_committed=lambda: committed.append(True), on_statuses=lambda c: statuses.append(len(c))
        )
        bodies = [text_notification("15550001001", f"wamid.OK_{i}", "hi") for i in range(5)]
        bodies.insert(2, text_notification("15550001002", POISON, "hi"))
        bodies.append(payload("status_delivered.json"))
        # every request queued before the writer starts: one batch, one group commit that fails
        writes = [asyncio.create_task(writer.write(_notification(body))) for body in bodies]
        await asyncio.sleep(0)
        writer.start()
        results = await asyncio.gather(*writes, return_exceptions=True)
        await writer.stop()

        assert isinstance(results[2], NotStored) and "poisoned" in str(results[2])
        assert results[:2] + results[3:] == [1, 1, 1, 1, 1, 0]
        assert await Message.filter(whatsapp_message_id__startswith="wamid.OK_").count() == 5
        assert not await Message.filter(whatsapp_message_id=POISON).exists()
        assert await EarlyStatus.filter(whatsapp_message_id="wamid.OUT_0001").exists()
        assert committed and statuses == [1]  # the inbox is woken, the status published, once
    finally:
        await close_db()


async def test_a_lone_failing_request_is_not_retried(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await init_db(database_url)
    try:
        await _refuse_the_poison(database_url)
        writer = IntakeWriter(on_committed=lambda: None)
        writer.start()
        with pytest.raises(NotStored):
            await writer.write(_notification(text_notification("15550001002", POISON, "hi")))
        # the writer goes on: the next request is stored
        assert await writer.write(_notification(text_notification("15550001001", "wamid.NEXT", "hi"))) == 1
        await writer.stop()
        [failure] = [r.getMessage() for r in caplog.records if "not stored" in r.getMessage()]
        assert POISON in failure and "poisoned" in failure
        assert not any("group commit" in r.getMessage() for r in caplog.records)
    finally:
        await close_db()


def test_an_inbound_row_is_written_with_every_column_that_needs_a_value() -> None:
    """The intake inserts INBOUND_COLUMNS only (no model per row): a column added to Message that may
    not be empty must be among them, or every webhook would fail to store."""
    needed = {
        name
        for name, field in Message._meta.fields_map.items()
        if name in Message._meta.fields_db_projection
        and not field.null
        and not field.pk
        and not field.generated
    }
    assert needed - set(INBOUND_COLUMNS) == set()
