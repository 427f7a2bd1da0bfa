"""Erasure's audit row (issue 12, the customer's rights).

- `audit_event.conversation` may be empty: the row that records an erasure has no conversation left.
- `audit_event.kind` gains `erasure` (CharEnumField: the values are in the column's description only).

Written by `bot db makemigrations`, then one operation by hand: on SQLite the table is rebuilt (a
column's NULL cannot be altered in place), its rows kept but not its two indexes (kind, at), which are
made again under the names generate_schemas gives them.
"""

from typing import Any

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor import BaseSchemaEditor, SqliteSchemaEditor

from bot.db.models import AuditKind


class SqliteOnlySQL(ops.RunSQL):
    """SQL for SQLite's rebuilt table only; PostgreSQL altered the column in place."""

    async def database_forward(
        self, app_label: str, old_state: Any, new_state: Any, state_editor: BaseSchemaEditor | None = None
    ) -> None:
        if isinstance(state_editor, SqliteSchemaEditor):
            await super().database_forward(app_label, old_state, new_state, state_editor)

    async def database_backward(
        self, app_label: str, old_state: Any, new_state: Any, state_editor: BaseSchemaEditor | None = None
    ) -> None:
        if isinstance(state_editor, SqliteSchemaEditor):
            await super().database_backward(app_label, old_state, new_state, state_editor)


class Migration(migrations.Migration):
    dependencies = [("models", "0007_consent")]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name="AuditEvent",
            options={
                "table": "audit_event",
                "app": "models",
                "pk_attr": "id",
                "table_description": "Who took, passed on or gave back which chat, what the guards did, and who erased a customer:",
            },
        ),
        ops.AlterField(
            model_name="AuditEvent",
            name="conversation",
            field=fields.ForeignKeyField(
                "models.Conversation",
                source_field="conversation_id",
                null=True,
                db_constraint=True,
                to_field="id",
                related_name="audit_events",
                on_delete=OnDelete.CASCADE,
            ),
        ),
        ops.AlterField(
            model_name="AuditEvent",
            name="kind",
            field=fields.CharEnumField(
                db_index=True,
                description="CLAIM: claim\nRELEASE: release\nTRANSFER: transfer\nGUARD_UNCLAIMED: guard_unclaimed\nGUARD_IDLE: guard_idle\nHANDOFF: handoff\nERASURE: erasure",
                enum_type=AuditKind,
                max_length=16,
            ),
        ),
        SqliteOnlySQL(
            [
                'CREATE INDEX IF NOT EXISTS "idx_audit_event_kind_b9de88" ON "audit_event" ("kind")',
                'CREATE INDEX IF NOT EXISTS "idx_audit_event_at_500752" ON "audit_event" ("at")',
            ],
            reverse_sql=[],
        ),
    ]
