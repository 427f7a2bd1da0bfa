"""Retention: what is older than privacy.retention_days goes (messages, their media files, finished
conversations), in batches, by the clock it is given; what is in flight or recent stays."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.db.models import (
    Conversation,
    ConversationMode,
    ConversationTimer,
    Customer,
    DeliveryStatus,
    Direction,
    Message,
)
from bot.media.store import MediaStore
from bot.privacy import retention as retention_module
from bot.privacy.retention import Retention
from bot.settings import load_settings
from tests.helpers import REPO, migrated_sqlite, write_settings
from tests.test_commands import run_bot

NOW = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=400)
RECENT = NOW - timedelta(days=30)


async def message(phone: str, at: datetime, status: DeliveryStatus, **fields: object) -> Message:
    direction = (
        Direction.INBOUND
        if status in (DeliveryStatus.PENDING, DeliveryStatus.HANDLED)
        else Direction.OUTBOUND
    )
    row = await Message.create(
        address=phone,
        message_direction=direction,
        message_type="text",
        message_content=f"text of {phone} at {at:%Y-%m-%d}",
        delivery_status=status,
        **fields,
    )
    await Message.filter(id=row.id).update(created_at=at)
    return row


async def conversation(phone: str, at: datetime, mode: ConversationMode) -> Conversation:
    customer = await Customer.create(wa_id=phone)
    row = await Conversation.create(
        customer=customer, flow="main", state="menu", mode=mode, variables={"a": 1}
    )
    await Conversation.filter(id=row.id).update(updated_at=at)
    return row


def old_file(path: Path, at: datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"enc1:...")
    os.utime(path, (at.timestamp(), at.timestamp()))


async def test_what_is_older_than_the_retention_goes_and_the_rest_stays(
    keyed_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention_module, "BATCH", 2)  # several batches
    store = MediaStore(tmp_path / "media")
    kept_file = await store.put(b"\x89PNG old photo", None)
    old_rows = [await message("15550001", OLD, DeliveryStatus.HANDLED) for _ in range(4)]
    with_file = await message("15550001", OLD, DeliveryStatus.READ, file_url=kept_file)
    in_flight = await message("15550001", OLD, DeliveryStatus.PENDING)
    queued = await message("15550001", OLD, DeliveryStatus.QUEUED)
    recent = await message("15550001", RECENT, DeliveryStatus.HANDLED)
    finished = await conversation("15550001", OLD, ConversationMode.BOT)
    await ConversationTimer.create(conversation=finished, flow="main", state="menu", due_at=OLD)
    with_person = await conversation("15550002", OLD, ConversationMode.HUMAN)
    lively = await conversation("15550003", RECENT, ConversationMode.BOT)
    orphan, young_orphan = store.directory / ("a" * 32), store.directory / ("b" * 32)
    old_file(orphan, OLD)
    old_file(young_orphan, RECENT)
    retention = Retention(365, store, clock=lambda: NOW)

    dry = await retention.run(dry_run=True)
    assert (dry.messages, dry.media_files, dry.conversations) == (5, 2, 1)
    assert "would delete 5 message(s), 2 media file(s), 1 finished conversation(s)" in dry.summary()
    assert await Message.all().count() == 8 and orphan.exists()

    report = await retention.run()
    assert (report.messages, report.media_files, report.conversations) == (5, 2, 1)
    left = set(await Message.all().values_list("id", flat=True))
    assert left == {in_flight.id, queued.id, recent.id}
    assert not {row.id for row in [*old_rows, with_file]} & left
    assert not (store.directory / kept_file.removeprefix("media:")).exists()
    assert not orphan.exists() and young_orphan.exists()
    assert set(await Conversation.all().values_list("id", flat=True)) == {with_person.id, lively.id}
    assert not await ConversationTimer.exists()
    assert await Customer.filter(wa_id="15550001").exists()  # the customer stays; their next chat is new

    again = await retention.run()  # nothing left to do
    assert (again.messages, again.media_files, again.conversations) == (0, 0, 0)


def test_the_default_is_a_year_and_the_command_runs_dry(tmp_path: Path) -> None:
    assert load_settings(REPO / "settings.yaml", {}).privacy.retention_days == 365
    env = {
        "BOT_SETTINGS": str(write_settings(tmp_path)),
        "DATABASE_URL": migrated_sqlite(tmp_path / "bot.db"),
    }
    dry = run_bot("retention", "run", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would delete 0 message(s), 0 media file(s), 0 finished conversation(s)" in dry.stdout
    done = run_bot("retention", "run", env=env)
    assert done.returncode == 0 and "deleted 0 message(s)" in done.stdout
