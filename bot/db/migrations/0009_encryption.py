"""Encryption at rest (issue 12): the customers' data keys, and the encrypted columns as TEXT.

- `data_key` (new): each customer's data key, wrapped under a master key (bot/db/keystore.py).
- The columns that now hold ciphertext (bot/db/encrypted.py) become TEXT: `message.message_content`,
  `file_name`, `payload`; `customer.profile_name`; `conversation.variables`; `appointment.customer_name`,
  `notes`; `handoff_note.text`; `repair_order.customer_name`. JSON columns keep their JSON, as text.
- `handoff_note.customer_id` (new, indexed): whose data key encrypts the note, filled from its
  conversation.

The rows stay as they are: plaintext values read as they are until `bot keys encrypt-existing` seals
them (batched, resumable), so upgrading is quick and needs no key.

Written by hand: Tortoise's generated AlterField rebuilds SQLite tables, which drops their indexes.
SQLite changes a column's declared type by editing the table's definition in place (as 0005 does);
PostgreSQL alters the type, JSONB with `USING column::text`.
"""

from __future__ import annotations

import re
from typing import Any

from tortoise import fields, migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor import BaseSchemaEditor, SqliteSchemaEditor

from bot.db.encrypted import EncryptedJSONField, EncryptedTextField


class StateOnly(ops.TortoiseOperation):
    """The model state of `operation`, without its database change (done by `_forward` below)."""

    def __init__(self, operation: ops.TortoiseOperation) -> None:
        self.operation = operation

    def describe(self) -> str:
        return self.operation.describe()

    def state_forward(self, app_label: str, state: Any) -> None:
        self.operation.state_forward(app_label, state)


_TO_TEXT = {
    "message": ("message_content", "file_name", "payload"),
    "customer": ("profile_name",),
    "conversation": ("variables",),
    "appointment": ("customer_name", "notes"),
    "handoff_note": ("text",),
    "repair_order": ("customer_name",),
}


async def _sqlite_to_text(client: Any, table: str, columns: tuple[str, ...]) -> None:
    """Declare `columns` TEXT in the table's CREATE statement: the rows stay as stored."""
    _, rows = await client.execute_query(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
    )
    sql = rows[0]["sql"]
    for column in columns:
        sql, count = re.subn(rf'("{column}" )(VARCHAR\(\d+\)|JSON|TEXT)', r"\1TEXT", sql, count=1)
        if count != 1:
            raise RuntimeError(f"{table}: no column definition matches {column}")
    _, version = await client.execute_query("PRAGMA schema_version")
    await client.execute_query("PRAGMA writable_schema = ON")
    await client.execute_query(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", [sql, table]
    )
    await client.execute_query(f"PRAGMA schema_version = {int(version[0]['schema_version']) + 1}")
    await client.execute_query("PRAGMA writable_schema = OFF")


async def _forward(apps: Any, editor: BaseSchemaEditor) -> None:
    client = editor.client
    for table, columns in _TO_TEXT.items():
        if isinstance(editor, SqliteSchemaEditor):
            await _sqlite_to_text(client, table, columns)
            continue
        for column in columns:
            await client.execute_query(
                f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE TEXT USING "{column}"::text'
            )
    await client.execute_query(  # AddField makes none on SQLite
        'CREATE INDEX IF NOT EXISTS "idx_handoff_not_custome_6410bc" ON "handoff_note" ("customer_id")'
    )
    await client.execute_query(
        'UPDATE "handoff_note" SET "customer_id" = (SELECT c."customer_id" FROM "conversation" c '
        'WHERE c."id" = "handoff_note"."conversation_id")'
    )


def _text(model: str, name: str, field: fields.Field[Any]) -> StateOnly:
    return StateOnly(ops.AlterField(model_name=model, name=name, field=field))


class Migration(migrations.Migration):
    dependencies = [("models", "0008_erasure")]

    initial = False

    operations = [
        ops.CreateModel(
            name="DataKey",
            fields=[
                (
                    "customer_id",
                    fields.IntField(primary_key=True, generated=False, unique=True, db_index=True),
                ),
                ("wrapped_key", fields.TextField(unique=False)),
                ("master_key_id", fields.CharField(db_index=True, max_length=16)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "data_key",
                "app": "models",
                "pk_attr": "customer_id",
                "table_description": "A customer's data key, wrapped (AES-GCM) under master key "
                "`master_key_id` (bot/db/keystore.py).",
            },
            bases=["Model"],
        ),
        ops.AddField(
            model_name="HandoffNote",
            name="customer_id",
            field=fields.IntField(null=True, db_index=True),
        ),
        _text(
            "Appointment", "customer_name", EncryptedTextField(null=True, owner="customer_id", max_length=256)
        ),
        _text("Appointment", "notes", EncryptedTextField(null=True, owner="customer_id")),
        _text("Conversation", "variables", EncryptedJSONField(default=dict, owner="customer_id")),
        _text("Customer", "profile_name", EncryptedTextField(null=True, owner="id", max_length=256)),
        _text("HandoffNote", "text", EncryptedTextField(owner="customer_id")),
        _text("Message", "file_name", EncryptedTextField(null=True, owner="customer_id", max_length=256)),
        _text("Message", "message_content", EncryptedTextField(null=True, owner="customer_id")),
        _text("Message", "payload", EncryptedJSONField(null=True, owner="customer_id")),
        _text("Order", "customer_name", EncryptedTextField(owner="customer_id", max_length=256)),
        ops.RunPython(_forward),
    ]
