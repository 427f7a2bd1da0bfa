"""Inbound rows the bot has handled are `handled`, no longer `delivered` (Meta's word for what we send).

The column is a varchar, so no table changes: DeliveryStatus gains HANDLED (the field's description,
which lists the values, is PostgreSQL's column comment), and the inbound rows stored as `delivered` by
earlier releases become `handled`.

Written by hand: the generated AlterField would rebuild the message table on SQLite, and Tortoise's
SQLite rebuild drops the table's indexes. SQLite keeps no column comments, so there is nothing to alter.
"""

from typing import Any

from tortoise import fields, migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor import BaseSchemaEditor, SqliteSchemaEditor

from bot.db.models import DeliveryStatus


class AlterDescription(ops.AlterField):
    """The field's new state everywhere; in the database only where the description is stored."""

    async def database_forward(
        self, app_label: str, old_state: Any, new_state: Any, state_editor: BaseSchemaEditor | None = None
    ) -> None:
        if isinstance(state_editor, SqliteSchemaEditor):
            return
        await super().database_forward(app_label, old_state, new_state, state_editor)

    async def database_backward(
        self, app_label: str, old_state: Any, new_state: Any, state_editor: BaseSchemaEditor | None = None
    ) -> None:
        if isinstance(state_editor, SqliteSchemaEditor):
            return
        await super().database_backward(app_label, old_state, new_state, state_editor)


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    initial = False

    operations = [
        AlterDescription(
            model_name="Message",
            name="delivery_status",
            field=fields.CharEnumField(
                db_index=True,
                description="PENDING: pending\nHANDLED: handled\nQUEUED: queued\nSENT: sent\nDELIVERED: delivered\nREAD: read\nFAILED: failed",
                enum_type=DeliveryStatus,
                max_length=12,
            ),
        ),
        ops.RunSQL(
            "UPDATE message SET delivery_status = 'handled'"
            " WHERE message_direction = 'inbound' AND delivery_status = 'delivered'",
            reverse_sql="UPDATE message SET delivery_status = 'delivered'"
            " WHERE message_direction = 'inbound' AND delivery_status = 'handled'",
        ),
    ]
