import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

from bot.db.models import (
    AppointmentStatus,
    AuditKind,
    ChangeSource,
    ConversationMode,
    DeliveryStatus,
    Direction,
    HandoffStatus,
    OrderSource,
    ReminderStatus,
    TechnicianRole,
)


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name="ApiKey",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("name", fields.CharField(unique=True, max_length=64)),
                ("key_hash", fields.CharField(unique=True, max_length=64)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("last_used_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("revoked_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "api_key",
                "app": "models",
                "pk_attr": "id",
                "table_description": "A bearer key for the orders API, stored only as the SHA-256 hex of the key.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Customer",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("wa_id", fields.CharField(unique=True, max_length=32)),
                ("profile_name", fields.CharField(null=True, max_length=256)),
                ("language", fields.CharField(null=True, max_length=8)),
                ("last_inbound_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={"table": "customer", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Conversation",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "customer",
                    fields.OneToOneField(
                        "models.Customer",
                        source_field="customer_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="conversation",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("flow", fields.CharField(null=True, max_length=64)),
                ("state", fields.CharField(null=True, max_length=128)),
                (
                    "variables",
                    fields.JSONField(
                        default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                (
                    "mode",
                    fields.CharEnumField(
                        default=ConversationMode.BOT,
                        description="BOT: bot\nHUMAN: human",
                        enum_type=ConversationMode,
                        max_length=8,
                    ),
                ),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={"table": "conversation", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ConversationTimer",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "conversation",
                    fields.OneToOneField(
                        "models.Conversation",
                        source_field="conversation_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="timer",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("flow", fields.CharField(max_length=64)),
                ("state", fields.CharField(max_length=128)),
                ("due_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "conversation_timer",
                "app": "models",
                "pk_attr": "id",
                "table_description": "A flow's `on: timeout`: fire at `due_at` if the conversation is still at (flow, state).",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="EarlyStatus",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("whatsapp_message_id", fields.CharField(db_index=True, max_length=128)),
                ("status", fields.CharField(max_length=16)),
                ("timestamp", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "pricing",
                    fields.JSONField(
                        null=True, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("error_code", fields.IntField(null=True)),
                ("error_title", fields.TextField(null=True, unique=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "early_status",
                "app": "models",
                "unique_together": (("whatsapp_message_id", "status"),),
                "pk_attr": "id",
                "table_description": "A status webhook for a wamid the outbox has not recorded yet; applied when it is.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Message",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("customer_phone", fields.CharField(db_index=True, max_length=32)),
                (
                    "message_direction",
                    fields.CharEnumField(
                        db_index=True,
                        description="INBOUND: inbound\nOUTBOUND: outbound",
                        enum_type=Direction,
                        max_length=8,
                    ),
                ),
                ("message_type", fields.CharField(max_length=24)),
                ("message_content", fields.TextField(null=True, unique=False)),
                ("file_url", fields.TextField(null=True, unique=False)),
                ("file_name", fields.CharField(null=True, max_length=256)),
                ("whatsapp_message_id", fields.CharField(null=True, unique=True, max_length=128)),
                (
                    "delivery_status",
                    fields.CharEnumField(
                        db_index=True,
                        description="PENDING: pending\nQUEUED: queued\nSENT: sent\nDELIVERED: delivered\nREAD: read\nFAILED: failed",
                        enum_type=DeliveryStatus,
                        max_length=12,
                    ),
                ),
                ("error_code", fields.IntField(null=True)),
                ("error_title", fields.TextField(null=True, unique=False)),
                ("order_id", fields.IntField(null=True, db_index=True)),
                ("technician_id", fields.IntField(null=True, db_index=True)),
                (
                    "payload",
                    fields.JSONField(
                        null=True, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("reply_to", fields.CharField(null=True, max_length=128)),
                (
                    "pricing",
                    fields.JSONField(
                        null=True, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("attempts", fields.IntField(default=0)),
                ("next_attempt_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("received_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("processed_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                (
                    "sent_at",
                    fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False),
                ),
                ("delivered_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("read_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("failed_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "message",
                "app": "models",
                "indexes": [Index(fields=["customer_phone", "id"])],
                "pk_attr": "id",
                "table_description": "One row per message in or out: the log, the durable inbox and the transactional outbox.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Order",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("order_number", fields.CharField(unique=True, max_length=64)),
                ("customer_phone", fields.CharField(db_index=True, max_length=32)),
                ("customer_name", fields.CharField(max_length=256)),
                ("device_model", fields.CharField(max_length=256)),
                ("problem", fields.TextField(unique=False)),
                ("status", fields.CharField(max_length=64)),
                ("quoted_price", fields.DecimalField(null=True, max_digits=12, decimal_places=2)),
                ("technician", fields.CharField(null=True, max_length=256)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "repair_order",
                "app": "models",
                "pk_attr": "id",
                "table_description": "A repair order as the shop's own system knows it; fed in by the orders API or a CSV import.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Appointment",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("customer_phone", fields.CharField(db_index=True, max_length=32)),
                ("customer_name", fields.CharField(null=True, max_length=256)),
                (
                    "order",
                    fields.ForeignKeyField(
                        "models.Order",
                        source_field="order_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="appointments",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                ("order_number", fields.CharField(null=True, max_length=64)),
                ("device_model", fields.CharField(null=True, max_length=256)),
                ("starts_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ("duration_minutes", fields.IntField()),
                (
                    "status",
                    fields.CharEnumField(
                        db_index=True,
                        description="BOOKED: booked\nCONFIRMED: confirmed\nRESCHEDULED: rescheduled\nCANCELLED: cancelled\nCOMPLETED: completed\nNO_SHOW: no_show",
                        enum_type=AppointmentStatus,
                        max_length=16,
                    ),
                ),
                ("notes", fields.TextField(null=True, unique=False)),
                ("plan", fields.IntField(default=1)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "appointment",
                "app": "models",
                "pk_attr": "id",
                "table_description": "A repair appointment. `starts_at` is stored in UTC and shown in the shop's zone.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="AppointmentChange",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "appointment",
                    fields.ForeignKeyField(
                        "models.Appointment",
                        source_field="appointment_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="history",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("from_status", fields.CharField(null=True, max_length=16)),
                ("to_status", fields.CharField(max_length=16)),
                ("from_starts_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("to_starts_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                (
                    "source",
                    fields.CharEnumField(
                        description="CHAT: chat\nAPI: api\nREMINDER: reminder",
                        enum_type=ChangeSource,
                        max_length=8,
                    ),
                ),
                ("changed_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "appointment_change",
                "app": "models",
                "pk_attr": "id",
                "table_description": "One change of an appointment's status or time, written in the transaction that made it.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="AppointmentReminder",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "appointment",
                    fields.ForeignKeyField(
                        "models.Appointment",
                        source_field="appointment_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="reminders",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("plan", fields.IntField()),
                ("offset_minutes", fields.IntField()),
                ("due_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("send_after", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                (
                    "status",
                    fields.CharEnumField(
                        db_index=True,
                        description="PENDING: pending\nSENT: sent\nSKIPPED: skipped",
                        enum_type=ReminderStatus,
                        max_length=8,
                    ),
                ),
                ("reason", fields.CharField(null=True, max_length=128)),
                ("sent_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("message_id", fields.BigIntField(null=True)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "appointment_reminder",
                "app": "models",
                "unique_together": (("appointment", "plan", "offset_minutes"),),
                "pk_attr": "id",
                "table_description": "One reminder of one appointment's plan; pending until it is sent (exactly once) or skipped.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="AppointmentSeat",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("slot_start", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("seat", fields.IntField()),
                (
                    "appointment",
                    fields.OneToOneField(
                        "models.Appointment",
                        source_field="appointment_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="seat",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
            ],
            options={
                "table": "appointment_seat",
                "app": "models",
                "unique_together": (("slot_start", "seat"),),
                "pk_attr": "id",
                "table_description": "One of a slot's `capacity` seats, held by one appointment that is not cancelled.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="OrderStatusChange",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "order",
                    fields.ForeignKeyField(
                        "models.Order",
                        source_field="order_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="history",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("from_status", fields.CharField(null=True, max_length=64)),
                ("to_status", fields.CharField(max_length=64)),
                ("changed_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "source",
                    fields.CharEnumField(
                        description="API: api\nIMPORT: import", enum_type=OrderSource, max_length=8
                    ),
                ),
            ],
            options={
                "table": "order_status_change",
                "app": "models",
                "pk_attr": "id",
                "table_description": "One status change of an order, written in the transaction that changed it (the first one too).",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Technician",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("name", fields.CharField(unique=True, max_length=128)),
                ("phone", fields.CharField(null=True, max_length=32)),
                (
                    "role",
                    fields.CharEnumField(
                        default=TechnicianRole.TECHNICIAN,
                        description="TECHNICIAN: technician\nADMIN: admin",
                        enum_type=TechnicianRole,
                        max_length=16,
                    ),
                ),
                ("active", fields.BooleanField(default=True)),
                ("token_hash", fields.CharField(unique=True, max_length=64)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "technician",
                "app": "models",
                "pk_attr": "id",
                "table_description": "A person who answers chats in the panel; logs in with a token stored only as its SHA-256 hex.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="AuditEvent",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "kind",
                    fields.CharEnumField(
                        db_index=True,
                        description="CLAIM: claim\nRELEASE: release\nTRANSFER: transfer\nGUARD_UNCLAIMED: guard_unclaimed\nGUARD_IDLE: guard_idle\nHANDOFF: handoff",
                        enum_type=AuditKind,
                        max_length=16,
                    ),
                ),
                (
                    "technician",
                    fields.ForeignKeyField(
                        "models.Technician",
                        source_field="technician_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="audit_events",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "conversation",
                    fields.ForeignKeyField(
                        "models.Conversation",
                        source_field="conversation_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="audit_events",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "details",
                    fields.JSONField(
                        default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "audit_event",
                "app": "models",
                "pk_attr": "id",
                "table_description": "Who took, passed on or gave back which chat, and what the guards did: append only.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Handoff",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "conversation",
                    fields.ForeignKeyField(
                        "models.Conversation",
                        source_field="conversation_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="handoffs",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("customer_phone", fields.CharField(db_index=True, max_length=32)),
                (
                    "status",
                    fields.CharEnumField(
                        db_index=True,
                        description="WAITING: waiting\nCLAIMED: claimed\nRELEASED: released",
                        enum_type=HandoffStatus,
                        max_length=12,
                    ),
                ),
                (
                    "technician",
                    fields.ForeignKeyField(
                        "models.Technician",
                        source_field="technician_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="handoffs",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                ("reason", fields.CharField(max_length=64)),
                ("requested_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("claimed_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("last_activity_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("released_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("apologized_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "handoff",
                "app": "models",
                "pk_attr": "id",
                "table_description": "One stretch of a conversation with a person: waiting → claimed → released.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="HandoffNote",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "handoff",
                    fields.ForeignKeyField(
                        "models.Handoff",
                        source_field="handoff_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="notes",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "conversation",
                    fields.ForeignKeyField(
                        "models.Conversation",
                        source_field="conversation_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="notes",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "technician",
                    fields.ForeignKeyField(
                        "models.Technician",
                        source_field="technician_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="notes",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                ("text", fields.TextField(unique=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "handoff_note",
                "app": "models",
                "pk_attr": "id",
                "table_description": "An internal note on a chat: shown to technicians in its history, never sent to the customer.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Template",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("template_name", fields.CharField(unique=True, max_length=512)),
                ("template_content", fields.TextField(unique=False)),
                ("language_code", fields.CharField(max_length=16)),
                ("category", fields.CharField(max_length=32)),
                (
                    "variables",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("is_active", fields.BooleanField(default=True)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={"table": "template", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="TemplateText",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("template_name", fields.CharField(max_length=512)),
                ("language_code", fields.CharField(max_length=16)),
                ("body", fields.TextField(unique=False)),
                ("status", fields.CharField(max_length=16)),
                ("sync_state", fields.CharField(null=True, max_length=24)),
                ("checked_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("is_active", fields.BooleanField(default=True)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "template_text",
                "app": "models",
                "unique_together": (("template_name", "language_code"),),
                "pk_attr": "id",
                "table_description": "One template in one language: its body as templates/ holds it and its state at Meta's last check.",
            },
            bases=["Model"],
        ),
    ]
