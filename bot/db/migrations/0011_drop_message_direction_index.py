"""The message table's index on `message_direction` goes (issue 13, speed).

It holds two values, so no query gains from it, every message row costs one more b-tree insert, and
SQLite, which keeps no statistics here, took it for the flood count each inbox batch makes and read
every inbound row ever stored (3.9 ms per batch after 20 s of `make bench`, growing with the table).

Written by `bot db makemigrations`, then changed by hand: its AlterField rebuilds the table on SQLite
and its rebuild lost the table's other indexes, so the field's change is recorded here for the
migrations' state only (`_StateOnly`), and the index is dropped by name (generate_schemas gives it that
name on both databases). Nothing else changes; no row is touched.
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor
from tortoise.migrations.schema_generator.state import State

from bot.db.models import Direction


class _StateOnly(ops.AlterField):
    """The field's new definition for the migrations' state; the database is changed by RunSQL."""

    async def database_forward(
        self, app_label: str, old_state: State, new_state: State, state_editor: BaseSchemaEditor | None = None
    ) -> None:
        return None

    async def database_backward(
        self, app_label: str, old_state: State, new_state: State, state_editor: BaseSchemaEditor | None = None
    ) -> None:
        return None


class Migration(migrations.Migration):
    dependencies = [("models", "0010_relay_about")]

    initial = False

    operations = [
        _StateOnly(
            model_name="Message",
            name="message_direction",
            field=fields.CharEnumField(
                description="INBOUND: inbound\nOUTBOUND: outbound", enum_type=Direction, max_length=8
            ),
        ),
        ops.RunSQL(
            ['DROP INDEX IF EXISTS "idx_message_message_bb8959"'],
            reverse_sql=[
                'CREATE INDEX IF NOT EXISTS "idx_message_message_bb8959" ON "message" ("message_direction")'
            ],
        ),
    ]
