"""Relayed rows linked to their customer (issue 12, erasure and export of the relay's copies).

- `message.about_customer_id` (new, nullable, indexed): on a technician's row of the WhatsApp relay
  (bot/handoff/relay.py), the customer whose chat it carries or answers, so erasing or exporting that
  customer finds it. Plain integer, no foreign key: the row belongs to the technician's number.

Written by `bot db makemigrations`: a nullable column (ALTER TABLE ADD COLUMN, no table rebuild on
SQLite), then its index by hand under the name generate_schemas gives it (AddField makes none on SQLite;
on PostgreSQL it is there already); nothing existing changes.
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0009_encryption")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Message",
            name="about_customer_id",
            field=fields.IntField(null=True, db_index=True),
        ),
        ops.RunSQL(
            ['CREATE INDEX IF NOT EXISTS "idx_message_about_c_84f8c8" ON "message" ("about_customer_id")'],
            reverse_sql=[],
        ),
    ]
