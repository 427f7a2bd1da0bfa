"""Customers are an internal id, not a phone number: identities in their own table, everything keyed on
the customer.

- `customer_identity` (new): one row per phone, BSUID, parent BSUID or username, unique per kind and
  value, with first and last seen.
- `customer`: `wa_id` may be empty (a customer known only by their BSUID); `bsuid` and `username` added.
- `message`: `customer_phone` becomes `address` (a phone or a BSUID, so 160 characters), and the row
  belongs to a customer (`customer_id`, indexed with `id` for each customer's log in order); the two
  indexes on the phone go, nothing looks a message up by its address any more.
- `repair_order` and `appointment` get their owner (`customer_id`); an appointment's phone may be
  empty (booked in the chat by a customer without one). `handoff.customer_phone` goes: a handoff's
  customer is its conversation's.

Nothing is lost. Every phone the old tables name gets a customer: the customers themselves, the
senders and recipients of messages (technicians who wrote in included: their 24-hour window is their
customer row's from now on), and the phones of orders and appointments, which are their owners; each
customer's phone becomes its first identity (first seen when the customer was created). Then every
message, order and appointment points at the customer with its phone.

Written by hand: Tortoise's generated AlterField and RemoveField rebuild SQLite tables, which drops
their indexes, and rebuilding `customer` would cascade its DROP into every conversation. Here SQLite
changes a column's declared type or NOT NULL by editing the table's definition in place (SQLite's own
documented procedure for changes that leave the stored rows as they are), renames and drops columns
with ALTER TABLE, and creates exactly the indexes the models name; tests/test_migrations.py checks the
result against the models on both databases.
"""

from __future__ import annotations

import re
from typing import Any

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor import BaseSchemaEditor, SqliteSchemaEditor

from bot.db.models import IdentityKind


class StateOnly(ops.TortoiseOperation):
    """The model state of `operation`, without its database change (done by `_forward` below)."""

    def __init__(self, operation: ops.TortoiseOperation) -> None:
        self.operation = operation

    def describe(self) -> str:
        return self.operation.describe()

    def state_forward(self, app_label: str, state: Any) -> None:
        self.operation.state_forward(app_label, state)


async def _sqlite_redefine(client: Any, table: str, changes: list[tuple[str, str]]) -> None:
    """Edit columns in the table's CREATE statement (declared type, NOT NULL): the rows stay as stored."""
    _, rows = await client.execute_query(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
    )
    sql = rows[0]["sql"]
    for pattern, replacement in changes:
        sql, count = re.subn(pattern, replacement, sql, count=1)
        if count != 1:
            raise RuntimeError(f"{table}: no column definition matches {pattern!r}")
    _, version = await client.execute_query("PRAGMA schema_version")
    await client.execute_query("PRAGMA writable_schema = ON")
    await client.execute_query(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", [sql, table]
    )
    await client.execute_query(f"PRAGMA schema_version = {int(version[0]['schema_version']) + 1}")
    await client.execute_query("PRAGMA writable_schema = OFF")


_SCHEMA_POSTGRES = [
    'ALTER TABLE "customer" ALTER COLUMN "wa_id" DROP NOT NULL',
    'ALTER TABLE "appointment" ALTER COLUMN "customer_phone" DROP NOT NULL',
    'ALTER TABLE "message" RENAME COLUMN "customer_phone" TO "address"',
    'ALTER TABLE "message" ALTER COLUMN "address" TYPE VARCHAR(160)',
    'COMMENT ON TABLE "customer" IS \'Someone who writes to the business number, whatever WhatsApp '
    "identifies them by.'",
]
_SCHEMA_BOTH = [
    'ALTER TABLE "customer" ADD COLUMN "bsuid" VARCHAR(160)',
    'ALTER TABLE "customer" ADD COLUMN "username" VARCHAR(256)',
    'ALTER TABLE "message" ADD COLUMN "customer_id" INT REFERENCES "customer" ("id") ON DELETE CASCADE',
    'ALTER TABLE "repair_order" ADD COLUMN "customer_id" INT REFERENCES "customer" ("id") ON DELETE SET NULL',
    'ALTER TABLE "appointment" ADD COLUMN "customer_id" INT REFERENCES "customer" ("id") ON DELETE SET NULL',
]
_PHONES = (
    ("message", "address"),
    ("repair_order", "customer_phone"),
    ("appointment", "customer_phone"),
)
"""Where the old tables name phones, in the order their customers are made."""
_BACKFILL = [
    *(
        f'INSERT INTO "customer" ("wa_id", "created_at", "updated_at") '
        f'SELECT "{column}", MIN("created_at"), MAX("updated_at") FROM "{table}" '
        f'WHERE "{column}" IS NOT NULL AND "{column}" NOT IN '
        '(SELECT "wa_id" FROM "customer" WHERE "wa_id" IS NOT NULL) '
        f'GROUP BY "{column}"'
        for table, column in _PHONES
    ),
    # a window for the senders who had no customer row (technicians): their last message in
    'UPDATE "customer" SET "last_inbound_at" = (SELECT MAX(COALESCE(m."sent_at", m."received_at")) '
    'FROM "message" m WHERE m."address" = "customer"."wa_id" AND m."message_direction" = \'inbound\') '
    'WHERE "last_inbound_at" IS NULL',
    'INSERT INTO "customer_identity" ("customer_id", "kind", "value", "first_seen_at", "last_seen_at") '
    'SELECT "id", \'phone\', "wa_id", "created_at", COALESCE("last_inbound_at", "created_at") '
    'FROM "customer" WHERE "wa_id" IS NOT NULL',
    *(
        f'UPDATE "{table}" SET "customer_id" = (SELECT c."id" FROM "customer" c '
        f'WHERE c."wa_id" = "{table}"."{column}")'
        for table, column in _PHONES
    ),
]
_INDEXES = [
    'DROP INDEX "idx_message_custome_768035"',
    'DROP INDEX "idx_message_custome_a4e65a"',
    'DROP INDEX "idx_handoff_custome_8f2ffb"',
    'ALTER TABLE "handoff" DROP COLUMN "customer_phone"',
    'CREATE INDEX "idx_customer_bsuid_ec97d8" ON "customer" ("bsuid")',
    'CREATE INDEX "idx_message_custome_de032b" ON "message" ("customer_id", "id")',
    'CREATE INDEX "idx_repair_orde_custome_d23b91" ON "repair_order" ("customer_id")',
    'CREATE INDEX "idx_appointment_custome_5b0659" ON "appointment" ("customer_id")',
]


async def _forward(apps: Any, editor: BaseSchemaEditor) -> None:
    client = editor.client
    if isinstance(editor, SqliteSchemaEditor):
        await _sqlite_redefine(client, "customer", [(r'("wa_id" VARCHAR\(32\)) NOT NULL', r"\1")])
        await _sqlite_redefine(client, "appointment", [(r'("customer_phone" VARCHAR\(32\)) NOT NULL', r"\1")])
        await client.execute_query('ALTER TABLE "message" RENAME COLUMN "customer_phone" TO "address"')
        await _sqlite_redefine(client, "message", [(r'"address" VARCHAR\(32\)', '"address" VARCHAR(160)')])
    else:
        for statement in _SCHEMA_POSTGRES:
            await client.execute_query(statement)
    for statement in [*_SCHEMA_BOTH, *_BACKFILL, *_INDEXES]:
        await client.execute_query(statement)


class Migration(migrations.Migration):
    dependencies = [("models", "0004_relay_pointer")]

    initial = False

    operations = [
        ops.CreateModel(
            name="CustomerIdentity",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "customer",
                    fields.ForeignKeyField(
                        "models.Customer",
                        source_field="customer_id",
                        db_index=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="identities",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "kind",
                    fields.CharEnumField(
                        description="PHONE: phone\nBSUID: bsuid\nPARENT_BSUID: parent_bsuid\nUSERNAME: username",
                        enum_type=IdentityKind,
                        max_length=16,
                    ),
                ),
                ("value", fields.CharField(max_length=256)),
                ("first_seen_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("last_seen_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "customer_identity",
                "app": "models",
                "unique_together": (("kind", "value"),),
                "pk_attr": "id",
                "table_description": "One phone, BSUID, parent BSUID or username of a customer, first and last seen.",
            },
            bases=["Model"],
        ),
        StateOnly(
            ops.AlterField(
                model_name="Appointment",
                name="customer_phone",
                field=fields.CharField(null=True, db_index=True, max_length=32),
            )
        ),
        StateOnly(
            ops.AddField(
                model_name="Appointment",
                name="customer",
                field=fields.ForeignKeyField(
                    "models.Customer",
                    source_field="customer_id",
                    null=True,
                    db_index=True,
                    db_constraint=True,
                    to_field="id",
                    related_name="appointments",
                    on_delete=OnDelete.SET_NULL,
                ),
            )
        ),
        ops.AlterModelOptions(
            name="Customer",
            options={
                "table": "customer",
                "app": "models",
                "pk_attr": "id",
                "table_description": "Someone who writes to the business number, whatever WhatsApp identifies them by.",
            },
        ),
        StateOnly(
            ops.AlterField(
                model_name="Customer",
                name="wa_id",
                field=fields.CharField(null=True, unique=True, max_length=32),
            )
        ),
        StateOnly(
            ops.AddField(
                model_name="Customer",
                name="bsuid",
                field=fields.CharField(null=True, db_index=True, max_length=160),
            )
        ),
        StateOnly(
            ops.AddField(
                model_name="Customer",
                name="username",
                field=fields.CharField(null=True, max_length=256),
            )
        ),
        StateOnly(ops.RemoveField(model_name="Handoff", name="customer_phone")),
        StateOnly(ops.RemoveIndex(model_name="Message", name=None, fields=["customer_phone", "id"])),
        StateOnly(ops.AddField(model_name="Message", name="address", field=fields.CharField(max_length=160))),
        StateOnly(
            ops.AddField(
                model_name="Message",
                name="customer",
                field=fields.ForeignKeyField(
                    "models.Customer",
                    source_field="customer_id",
                    null=True,
                    db_constraint=True,
                    to_field="id",
                    related_name="messages",
                    on_delete=OnDelete.CASCADE,
                ),
            )
        ),
        StateOnly(ops.RemoveField(model_name="Message", name="customer_phone")),
        StateOnly(ops.AddIndex(model_name="Message", index=Index(fields=["customer_id", "id"]))),
        StateOnly(
            ops.AddField(
                model_name="Order",
                name="customer",
                field=fields.ForeignKeyField(
                    "models.Customer",
                    source_field="customer_id",
                    null=True,
                    db_index=True,
                    db_constraint=True,
                    to_field="id",
                    related_name="orders",
                    on_delete=OnDelete.SET_NULL,
                ),
            )
        ),
        ops.RunPython(_forward),
    ]
