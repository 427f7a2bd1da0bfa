"""Statistics, the cost ledger and the send limits (issue 14).

- `cost_entry` (new): each message's status `pricing`, once per message, with its customer, market,
  template and flow (bot/costs/ledger.py).
- `conversation_step` (new): every state a conversation entered, for the flows' funnels (bot/stats.py).
- `send_admission` (new): the outbound messages the send limits let through, once each: the daily cap
  and Meta's messaging limit count them (bot/costs/guard.py).
- `account_state` (new): what Meta last said about the account (the messaging limit's tier).
- `message.flow` (new, nullable): the flow that sent an outbound message; an index on
  `message.created_at`, which the statistics' periods are ranges of.

Written by `bot db makemigrations`: new tables, a nullable column (ALTER TABLE ADD COLUMN, no table
rebuild on SQLite) and an index; nothing existing changes.
"""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0005_identity")]

    initial = False

    operations = [
        ops.CreateModel(
            name="AccountState",
            fields=[
                ("key", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                (
                    "value",
                    fields.JSONField(
                        default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "account_state",
                "app": "models",
                "pk_attr": "key",
                "table_description": "What Meta last told us about the account (the messaging limit's tier), by key.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ConversationStep",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("conversation_id", fields.IntField(db_index=True)),
                ("flow", fields.CharField(max_length=64)),
                ("state", fields.CharField(max_length=128)),
                ("at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "conversation_step",
                "app": "models",
                "pk_attr": "id",
                "table_description": "A state a conversation entered (every `goto` hop too), written with the state it moved to: the",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="CostEntry",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("message_id", fields.BigIntField(unique=True)),
                ("customer_id", fields.IntField(null=True, db_index=True)),
                ("market", fields.CharField(max_length=8)),
                ("message_type", fields.CharField(max_length=24)),
                ("category", fields.CharField(max_length=64)),
                ("pricing_type", fields.CharField(null=True, max_length=64)),
                ("pricing_model", fields.CharField(null=True, max_length=64)),
                ("template", fields.CharField(null=True, max_length=512)),
                ("flow", fields.CharField(null=True, max_length=64)),
                ("at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "cost_entry",
                "app": "models",
                "pk_attr": "id",
                "table_description": "One message's price as Meta reported it (a status webhook's `pricing`), recorded once per",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="SendAdmission",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("message_id", fields.BigIntField(unique=True)),
                ("customer_id", fields.IntField()),
                ("initiated", fields.BooleanField(default=False)),
                ("at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "send_admission",
                "app": "models",
                "indexes": [Index(fields=["customer_id", "at"])],
                "pk_attr": "id",
                "table_description": "An outbound message the send limits let through at the outbox's claim (bot/costs/guard.py),",
            },
            bases=["Model"],
        ),
        ops.AddField(
            model_name="Message",
            name="flow",
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddIndex(
            model_name="Message",
            index=Index(fields=["created_at"]),
        ),
    ]
