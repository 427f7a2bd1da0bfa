"""The consent ledger (issue 12, opt-out).

- `consent_change` (new): every opt-out and opt-in, with its scope, source and time
  (bot/privacy/consent.py).
- `customer.opted_out_at`, `customer.marketing_opted_out_at` (new, nullable): the current state, read
  with the customer.

Written by `bot db makemigrations`: a new table and two nullable columns; nothing existing changes.
"""

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

from bot.db.models import ConsentAction, ConsentScope, ConsentSource


class Migration(migrations.Migration):
    dependencies = [("models", "0006_stats")]

    initial = False

    operations = [
        ops.CreateModel(
            name="ConsentChange",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "customer",
                    fields.ForeignKeyField(
                        "models.Customer",
                        source_field="customer_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="consent_changes",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "scope",
                    fields.CharEnumField(
                        description="ALL: all\nMARKETING: marketing", enum_type=ConsentScope, max_length=16
                    ),
                ),
                (
                    "action",
                    fields.CharEnumField(
                        description="OPT_OUT: opt_out\nOPT_IN: opt_in", enum_type=ConsentAction, max_length=8
                    ),
                ),
                (
                    "source",
                    fields.CharEnumField(
                        description="KEYWORD: keyword\nUSER_PREFERENCES: user_preferences\nERROR_131050: error_131050",
                        enum_type=ConsentSource,
                        max_length=24,
                    ),
                ),
                ("detail", fields.CharField(null=True, max_length=128)),
                ("at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "consent_change",
                "app": "models",
                "indexes": [Index(fields=["customer_id", "at"])],
                "pk_attr": "id",
                "table_description": "The consent ledger: every opt-out and opt-in a customer gave, with its time and source, append",
            },
            bases=["Model"],
        ),
        ops.AddField(
            model_name="Customer",
            name="marketing_opted_out_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name="Customer",
            name="opted_out_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
