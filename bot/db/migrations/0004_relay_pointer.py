"""Where each technician's relay commands point (`relay_pointer`, bot/handoff/relay.py): the chat their
replies go to, the numbering of their last `list`, the chat last announced to them, so that a restart
changes none of it. By customer (Customer.id); a new table, nothing else touched.

Written by `bot db makemigrations`.
"""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0003_pace_bucket")]

    initial = False

    operations = [
        ops.CreateModel(
            name="RelayPointer",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "technician",
                    fields.OneToOneField(
                        "models.Technician",
                        source_field="technician_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="relay_pointer",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "current_customer",
                    fields.ForeignKeyField(
                        "models.Customer",
                        source_field="current_customer_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="relay_current_of",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "offered_customer",
                    fields.ForeignKeyField(
                        "models.Customer",
                        source_field="offered_customer_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="relay_offered_to",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "listed",
                    fields.JSONField(
                        null=True, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "relay_pointer",
                "app": "models",
                "pk_attr": "id",
                "table_description": "Where a technician's relay commands point (bot/handoff/relay.py), kept here so a restart changes",
            },
            bases=["Model"],
        ),
    ]
