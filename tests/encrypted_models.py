"""A model with encrypted fields for tests/test_crypto.py (not part of the bot's schema)."""

from __future__ import annotations

from typing import Any

from tortoise import fields

from bot.db.encrypted import EncryptedJSONField, EncryptedTextField, PrivateModel
from bot.db.models import DataKey

__all__ = ["DataKey", "SecretNote"]
"""DataKey too: the notes' owners get their data keys as the bot's customers do (bot/db/keystore.py)."""


class SecretNote(PrivateModel):
    id = fields.IntField(primary_key=True)
    owner_id = fields.IntField()
    body: fields.Field[str | None] = EncryptedTextField(owner="owner_id", max_length=100, null=True)
    title: fields.Field[str | None] = EncryptedTextField(owner="owner_id", null=True)
    extra: fields.Field[Any] = EncryptedJSONField(owner="owner_id", null=True)

    class Meta:
        table = "test_secret_note"
