"""The throughput buckets every process shares (`pace_bucket`, bot/db/buckets.py), so that several
`bot serve` processes on one PostgreSQL database stay under the business number's messages per second
and each recipient's pair limit together.

Written by `bot db makemigrations`, then one operation by hand: on PostgreSQL the table is UNLOGGED (a
commit that only moves a bucket writes no WAL and waits for no disk; after a crash the table is empty,
which only means full buckets). SQLite has no such thing, and serves one process, which paces in memory.
"""

from typing import Any

from tortoise import fields, migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor import BaseSchemaEditor, SqliteSchemaEditor


class PostgresOnlySQL(ops.RunSQL):
    """SQL that only PostgreSQL has; nothing on SQLite."""

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
    dependencies = [("models", "0002_inbound_handled")]

    initial = False

    operations = [
        ops.CreateModel(
            name="PaceBucket",
            fields=[
                ("key", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ("tat", fields.FloatField()),
            ],
            options={
                "table": "pace_bucket",
                "app": "models",
                "pk_attr": "key",
                "table_description": "A throughput bucket every process shares (bot/db/buckets.py): the business number's messages per",
            },
            bases=["Model"],
        ),
        PostgresOnlySQL(
            "ALTER TABLE pace_bucket SET UNLOGGED", reverse_sql="ALTER TABLE pace_bucket SET LOGGED"
        ),
    ]
