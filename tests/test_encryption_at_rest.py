"""Encryption at rest applied (issue 12): the bot's columns hold only ciphertext under each customer's
data key, a destroyed key shreds one customer, rotation and encrypt-existing run in resumable batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tortoise import connections

from bot import crypto
from bot.db import close_db, init_db
from bot.db.encrypted import Unreadable
from bot.db.keystore import destroy_data_key, sync_loader
from bot.db.models import (
    Appointment,
    AppointmentStatus,
    Conversation,
    Customer,
    DataKey,
    DeliveryStatus,
    Direction,
    Message,
)
from bot.db.rekey import encrypt_existing, rotate
from tests.appointments_helpers import database
from tests.helpers import (
    ENCRYPTION_KEY,
    BotFactory,
    dialect_sql,
    eventually,
    execute,
    migrated_sqlite,
    post_webhook,
    text_notification,
)
from tests.test_commands import run_bot
from tests.test_migrations import postgres_only, restore_postgres_v0, sqlite_copy

OTHER_KEY = crypto.generate_master_key()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[str]:
    """The test database, started; its URL (a new key ring reads its data keys from there)."""
    async with database(database_url):
        yield database_url


PHONE = "15550004242"
NAME = "Maya Quillfeather"
SECRET = "my zirconium screen cracked"

PLACES = {
    "message": ("message_content", "file_name", "payload"),
    "customer": ("profile_name",),
    "conversation": ("variables",),
    "appointment": ("customer_name", "notes"),
    "handoff_note": ("text",),
    "repair_order": ("customer_name",),
}
"""Every encrypted column, by table."""


def ring(keys: str, url: str) -> crypto.KeyRing:
    """A new process's key ring for `url` (nothing cached: data keys come from the database)."""
    made = crypto.KeyRing(crypto.parse_master_keys(keys), sync_loader(url))
    crypto.install(made)
    return made


async def raw_values(table: str, columns: tuple[str, ...]) -> list[Any]:
    _, rows = await connections.get("default").execute_query(
        f'SELECT {", ".join(columns)} FROM "{table}" ORDER BY 1'
    )
    return [row[column] for row in rows for column in columns if row[column] is not None]


async def test_a_webhook_conversation_leaves_only_ciphertext_and_reads_back_plain(
    bot_client: BotFactory,
) -> None:
    client = await bot_client()
    await post_webhook(client, text_notification(PHONE, "wamid.E1", "hi", name=NAME))
    await post_webhook(client, text_notification(PHONE, "wamid.E2", SECRET, name=NAME))

    async def replied() -> bool:
        return await Message.filter(reply_to="wamid.E2", delivery_status=DeliveryStatus.SENT).exists()

    await eventually(replied)
    customer = await Customer.get(wa_id=PHONE)
    stored: list[Any] = []
    for table, columns in PLACES.items():
        stored += await raw_values(table, columns)
    assert len(stored) >= 8  # both messages in, the replies out, the profile name, the variables
    for value in stored:
        text = str(value)
        assert text.startswith(f"enc1:d:{customer.id}:"), text[:40]
        assert "zirconium" not in text and "Quillfeather" not in text and "Maya" not in text
    # the same server reads it all back: the greeting used the name, the rows open
    inbound = await Message.filter(customer_id=customer.id, message_direction=Direction.INBOUND).order_by(
        "id"
    )
    assert [row.message_content for row in inbound] == ["hi", SECRET]
    assert inbound[1].payload is not None and inbound[1].payload["profile_name"] == NAME
    assert (await Customer.get(id=customer.id)).profile_name == NAME
    greeting = await Message.filter(reply_to="wamid.E1").first()
    assert greeting is not None and greeting.message_content and "Maya" in greeting.message_content
    assert await DataKey.filter(customer_id=customer.id).count() == 1


async def _customer(phone: str, name: str, text: str) -> tuple[Customer, Message]:
    customer = await Customer.create(wa_id=phone, profile_name=name)
    message = await Message.create(
        customer_id=customer.id,
        address=phone,
        message_direction=Direction.INBOUND,
        message_type="text",
        message_content=text,
        delivery_status=DeliveryStatus.HANDLED,
        payload={"message": {"text": {"body": text}}},
    )
    return customer, message


async def test_a_value_moved_to_another_customer_is_refused(db: str) -> None:
    _, alex_message = await _customer("15550001001", "Alex", "Alex's address is 5 Elm St")
    sam, sam_message = await _customer("15550001002", "Sam", "Sam's note")
    _, rows = await connections.get("default").execute_query(
        dialect_sql("SELECT message_content FROM message WHERE id = $1"), [alex_message.id]
    )
    alex_raw = rows[0]["message_content"]
    await execute("UPDATE message SET message_content = $1 WHERE id = $2", alex_raw, sam_message.id)
    await execute("UPDATE message SET customer_id = $1 WHERE id = $2", sam.id, alex_message.id)
    rows_read = {row.id: row for row in await Message.all()}  # one batch: nothing crashes
    for moved in (rows_read[sam_message.id], rows_read[alex_message.id]):
        assert isinstance(moved.message_content, Unreadable)
        assert moved.message_content == (
            "[unreadable: message.message_content: the value belongs to another row]"
        )
    assert rows_read[sam_message.id].payload == {"message": {"text": {"body": "Sam's note"}}}


async def test_destroying_a_data_key_shreds_that_customer_and_no_one_else(db: str) -> None:
    alex, _ = await _customer("15550002001", "Alex", "Alex's secret")
    sam, _ = await _customer("15550002002", "Sam", "Sam's secret")
    appointment = await Appointment.create(
        customer_id=alex.id,
        customer_phone=alex.wa_id,
        customer_name="Alex A.",
        notes="side door",
        starts_at=datetime(2030, 1, 1, 10, tzinfo=UTC),
        duration_minutes=30,
        status=AppointmentStatus.BOOKED,
    )
    await destroy_data_key(alex.id)
    for _ in range(2):  # in this process at once, and in a new one (nothing cached)
        gone = (
            f"[unreadable: the data key of {alex.id} is gone (the customer was erased) or was never stored]"
        )
        messages = {row.customer_id: row for row in await Message.all()}
        assert messages[alex.id].message_content == gone
        assert messages[sam.id].message_content == "Sam's secret"
        assert (await Customer.get(id=alex.id)).profile_name == gone
        assert (await Customer.get(id=sam.id)).profile_name == "Sam"
        shredded = await Appointment.get(id=appointment.id)
        assert (shredded.customer_name, shredded.notes) == (gone, gone)
        ring(ENCRYPTION_KEY, db)
    # nothing new is written for them under another key (a new one would be theirs again)
    assert not await DataKey.filter(customer_id=alex.id).exists()


async def test_a_missing_master_key_is_named_and_the_batch_reads(db: str) -> None:
    ring(OTHER_KEY, db)
    old_id = crypto.current().primary.id
    old, _ = await _customer("15550003001", "Old", "written under the old key")
    ring(ENCRYPTION_KEY, db)  # the old key left BOT_ENCRYPTION_KEYS
    new, _ = await _customer("15550003002", "New", "written under the new key")
    rows = {row.customer_id: row for row in await Message.all()}
    assert rows[old.id].message_content == (
        f"[unreadable: encryption key {old_id} is not in BOT_ENCRYPTION_KEYS (add it back to read this)]"
    )
    assert rows[new.id].message_content == "written under the new key"
    ring(f"{ENCRYPTION_KEY},{OTHER_KEY}", db)  # back in (not first): readable again
    assert (await Message.get(customer_id=old.id)).message_content == "written under the old key"


class Stop(Exception):
    """Stands for a rotation killed half-way."""


async def test_rotation_stopped_half_way_resumes_and_the_old_key_can_go(db: str) -> None:
    ring(OTHER_KEY, db)
    old_id = crypto.current().primary.id
    customers = [await _customer(f"1555000400{n}", f"C{n}", f"text {n}") for n in range(5)]
    new = ring(f"{ENCRYPTION_KEY},{OTHER_KEY}", db)
    seen: list[tuple[str, int, int]] = []

    def stop_after_first(what: str, done: int, of: int) -> None:
        seen.append((what, done, of))
        raise Stop

    with pytest.raises(Stop):
        await rotate(batch_size=2, progress=stop_after_first)
    assert seen == [("data keys", 2, 5)]
    assert await DataKey.filter(master_key_id=new.primary.id).count() == 2  # that batch committed
    assert await DataKey.filter(master_key_id=old_id).count() == 3
    seen.clear()
    report = await rotate(batch_size=2, progress=lambda *args: seen.append(args))
    assert (report.already, report.rewrapped, report.failed) == (2, 3, {})
    assert seen == [("data keys", 4, 5), ("data keys", 5, 5)]
    ring(ENCRYPTION_KEY, db)  # the old master key removed
    read = {row.customer_id: row.message_content for row in await Message.all()}
    assert read == {customer.id: f"text {n}" for n, (customer, _) in enumerate(customers)}


async def test_encrypt_existing_seals_plaintext_in_batches_and_skips_what_is_done(db: str) -> None:
    customer, _ = await _customer("15550005001", "Placeholder", "placeholder")
    conversation = await Conversation.create(customer_id=customer.id, variables={"x": 1})
    # as a database from before encryption holds them: plaintext, JSON as text
    await execute("UPDATE customer SET profile_name = $1 WHERE id = $2", "Plain Name", customer.id)
    await execute("UPDATE message SET payload = $1 WHERE customer_id = $2", '{"a": "plain"}', customer.id)
    await execute(
        "UPDATE conversation SET variables = $1 WHERE id = $2", '{"answer": "plain"}', conversation.id
    )
    for _ in range(4):
        await Message.create(
            customer_id=customer.id,
            address=customer.wa_id,
            message_direction=Direction.OUTBOUND,
            message_type="text",
            message_content="x",
            delivery_status=DeliveryStatus.SENT,
        )
    await execute("UPDATE message SET message_content = $1 WHERE customer_id = $2", "plain text", customer.id)
    progress: list[tuple[str, int, int]] = []
    report = await encrypt_existing(batch_size=2, progress=lambda *args: progress.append(args))
    assert report.sealed["message.message_content"] == 5 and report.sealed["message.payload"] == 1
    assert report.sealed["customer.profile_name"] == 1 and report.sealed["conversation.variables"] == 1
    assert [p for p in progress if p[0] == "message"] == [
        ("message", 2, 5),
        ("message", 4, 5),
        ("message", 5, 5),
    ]
    for table, columns in PLACES.items():
        for value in await raw_values(table, columns):
            assert str(value).startswith(f"enc1:d:{customer.id}:")
    assert (await Customer.get(id=customer.id)).profile_name == "Plain Name"
    assert {row.message_content for row in await Message.all()} == {"plain text"}
    assert (await Conversation.get(id=conversation.id)).variables == {"answer": "plain"}
    again = await encrypt_existing(batch_size=2)
    assert again.total == 0


def _plaintext_rows(path: Path) -> dict[str, list[Any]]:
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        return {
            table: sorted(
                str(value)
                for row in connection.execute(f'SELECT {", ".join(cols)} FROM "{table}"')
                for value in row
                if value is not None
            )
            for table, cols in PLACES.items()
        }
    finally:
        connection.close()


def test_encrypt_existing_on_the_last_release_s_database(tmp_path: Path) -> None:
    path = sqlite_copy(tmp_path)
    env = {"DATABASE_URL": f"sqlite://{path}", "BOT_ENCRYPTION_KEYS": ENCRYPTION_KEY}
    assert run_bot("db", "migrate", env=env).returncode == 0
    before = _plaintext_rows(path)
    assert sum(map(len, before.values())) > 0

    async def read() -> dict[str, list[str]]:
        await init_db(f"sqlite://{path}")
        ring(ENCRYPTION_KEY, f"sqlite://{path}")
        try:
            return {
                "message": sorted(
                    str(v)
                    for m in await Message.all()
                    for v in (m.message_content, m.file_name, m.payload)
                    if v is not None
                ),
                "customer": sorted(c.profile_name for c in await Customer.all() if c.profile_name),
            }
        finally:
            await close_db()

    plain = asyncio.run(read())
    done = run_bot("keys", "encrypt-existing", "--batch-size", "2", env=env)
    assert done.returncode == 0, done.stderr
    assert "message: 2 of" in done.stderr and "value(s) encrypted" in done.stdout
    after = _plaintext_rows(path)
    for table, values in after.items():
        assert all(value.startswith("enc1:") for value in values), table
        assert len(values) == len(before[table])
    assert asyncio.run(read()) == plain  # every value reads as it did
    again = run_bot("keys", "encrypt-existing", env=env)
    assert again.returncode == 0 and "0 value(s) encrypted" in again.stdout


def test_keys_rotate_names_a_missing_master_key_and_resumes(tmp_path: Path) -> None:
    url = migrated_sqlite(tmp_path / "bot.db")

    async def written_under_the_old_key() -> str:
        async with database(url):
            ring(OTHER_KEY, url)
            for n in range(3):
                await _customer(f"1555000600{n}", f"C{n}", f"text {n}")
            return crypto.current().primary.id

    old_id = asyncio.run(written_under_the_old_key())
    new_id = crypto.parse_master_keys(ENCRYPTION_KEY)[0].id
    only_new = run_bot("keys", "rotate", env={"DATABASE_URL": url, "BOT_ENCRYPTION_KEYS": ENCRYPTION_KEY})
    assert only_new.returncode == 1
    assert f"encryption key {old_id} is not in BOT_ENCRYPTION_KEYS" in only_new.stderr
    assert "3 key(s) left as they were" in only_new.stderr
    both = {"DATABASE_URL": url, "BOT_ENCRYPTION_KEYS": f"{ENCRYPTION_KEY},{OTHER_KEY}"}
    done = run_bot("keys", "rotate", "--batch-size", "2", env=both)
    assert done.returncode == 0, done.stderr
    assert "data keys: 2 of 3" in done.stderr and "data keys: 3 of 3" in done.stderr
    assert f"3 data key(s) re-wrapped under encryption key {new_id}, 0 already were, of 3" in done.stdout
    again = run_bot("keys", "rotate", env=both)
    assert "0 data key(s) re-wrapped" in again.stdout and "3 already were" in again.stdout


async def _stored(table: str, columns: tuple[str, ...]) -> list[str]:
    return sorted(str(value) for value in await raw_values(table, columns))


async def _read_back() -> list[str]:
    """What the models read of every encrypted column (decrypted, or plaintext as it is)."""
    read: list[str] = []
    for row in await Message.all():
        read += [str(v) for v in (row.message_content, row.file_name, row.payload) if v is not None]
    read += [str(c.profile_name) for c in await Customer.all() if c.profile_name is not None]
    read += [str(c.variables) for c in await Conversation.all()]
    return sorted(read)


@postgres_only
async def test_encrypt_existing_on_the_last_release_s_postgres_database() -> None:
    url = await restore_postgres_v0()
    await init_db(url, migrate_schema=True)
    try:
        ring(ENCRYPTION_KEY, url)
        plain = {table: await _stored(table, columns) for table, columns in PLACES.items()}
        assert not any(value.startswith("enc1:") for values in plain.values() for value in values)
        before = await _read_back()
        report = await encrypt_existing(batch_size=3)
        assert report.total == sum(map(len, plain.values()))
        for table, columns in PLACES.items():
            stored = await _stored(table, columns)
            assert len(stored) == len(plain[table]) and all(v.startswith("enc1:d:") for v in stored)
        ring(ENCRYPTION_KEY, url)  # a new process: the data keys come from data_key
        assert await _read_back() == before
    finally:
        await close_db()


async def test_after_a_rotation_encrypt_existing_reseals_what_the_old_key_sealed_for_nobody(db: str) -> None:
    ring(OTHER_KEY, db)
    old_id = crypto.current().primary.id

    async def ownerless(text: str) -> Message:  # a row a tool wrote without its customer
        return await Message.create(
            address="15550007001",
            message_direction=Direction.INBOUND,
            message_type="text",
            message_content=text,
            delivery_status=DeliveryStatus.HANDLED,
        )

    old = await ownerless("under the old master key")
    new = ring(f"{ENCRYPTION_KEY},{OTHER_KEY}", db)
    await ownerless("under the new master key")
    assert {str(v)[:16] for v in await raw_values("message", ("message_content",))} == {
        f"enc1:m.{old_id}:",
        f"enc1:m.{new.primary.id}:",
    }
    report = await encrypt_existing()
    assert report.sealed == {"message.message_content": 1}
    assert {str(v)[:16] for v in await raw_values("message", ("message_content",))} == {
        f"enc1:m.{new.primary.id}:"
    }
    assert (await encrypt_existing()).total == 0
    ring(ENCRYPTION_KEY, db)  # the old master key gone
    assert (await Message.get(id=old.id)).message_content == "under the old master key"
