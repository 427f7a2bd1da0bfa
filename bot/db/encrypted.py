"""Encrypted ORM fields: models and queries stay ordinary, the columns hold only ciphertext.

`EncryptedTextField` and `EncryptedJSONField` encrypt in `to_db_value` and decrypt in `to_python_value`
with the process's key ring (bot/crypto.py). A value's place (`table.column`) is its associated data;
its owner (a customer) comes from the row: `owner="customer_id"` names the attribute that holds it.
Rows of a `PrivateModel` are read with their owner known, so a ciphertext copied into another customer's
row is refused.

A value that cannot be opened (its key is missing, it was changed) never crashes the read nor becomes
garbage text: it reads as `Unreadable` (a str naming the problem) or an empty `UnreadableJSON`, logged
once per problem at ERROR, and saving such a value back writes the original ciphertext unchanged, so
restoring the key restores the data. Plaintext values (a database from before encryption, until
`bot keys encrypt-existing` has run) read as they are.

Equality lookups on these columns cannot work (every encryption differs): none are needed; phone
numbers stay in clear as the key of everything.
"""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.exceptions import ValidationError
from tortoise.models import Model

from bot import crypto

if TYPE_CHECKING:
    from typing import Self

log = logging.getLogger(__name__)

_row: ContextVar[dict[str, Any] | None] = ContextVar("encrypted_row", default=None)
_reported: dict[str, float] = {}
REPORT_EVERY_SECONDS = 600.0


class Unreadable(str):
    """A text value that could not be decrypted; its text says why (naming the key), never the data."""

    ciphertext: str

    def __new__(cls, reason: str, ciphertext: str) -> Self:
        value = super().__new__(cls, f"[unreadable: {reason}]")
        value.ciphertext = ciphertext
        return value


class UnreadableJSON(dict[str, Any]):
    """A JSON value that could not be decrypted: empty, with the reason."""

    def __init__(self, reason: str, ciphertext: str) -> None:
        super().__init__()
        self.reason = reason
        self.ciphertext = ciphertext


def _report(error: crypto.CryptoError) -> None:
    """At ERROR once per problem every ten minutes, not once per row of a batch."""
    reason, now = str(error), time.monotonic()
    if now - _reported.get(reason, -REPORT_EVERY_SECONDS) >= REPORT_EVERY_SECONDS:
        if len(_reported) > 1000:
            _reported.clear()
        _reported[reason] = now
        log.error("cannot decrypt a stored value: %s", reason)


class _Encrypted(fields.Field[Any]):
    """What both encrypted fields share: where a value lives, whose it is, and the key ring calls."""

    SQL_TYPE = "TEXT"
    indexable = False
    owner: str | None

    @property
    def context(self) -> str:
        return f"{self.model._meta.db_table}.{self.source_field or self.model_field_name}"

    def _owner_of(self, instance: Any) -> str | None:
        if self.owner is None or not isinstance(instance, Model):
            return None
        value = getattr(instance, self.owner, None)
        return None if value is None else str(value)

    def _row_owner(self) -> str | None:
        row = _row.get()
        if row is None or self.owner is None:
            return None
        owner_field = self.model._meta.fields_map.get(self.owner)
        column = (owner_field.source_field if owner_field else None) or self.owner
        value = row.get(column)
        return None if value is None else str(value)

    def _seal(self, plaintext: str, instance: Any) -> str:
        return crypto.current().encrypt(plaintext.encode(), self.context, self._owner_of(instance))

    def _open(self, stored: str) -> str:
        return crypto.current().decrypt(stored, self.context, self._row_owner()).decode()


class EncryptedTextField(_Encrypted):
    """A text column stored encrypted; `max_length` limits the plaintext (the column is TEXT)."""

    field_type = str

    def __init__(self, owner: str | None = None, max_length: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.owner = owner
        self.max_length = max_length

    def to_db_value(self, value: Any, instance: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, Unreadable):
            return value.ciphertext
        text = str(value)
        if self.max_length is not None and len(text) > self.max_length:
            raise ValidationError(f"{self.model_field_name}: longer than {self.max_length} characters")
        return self._seal(text, instance)

    def to_python_value(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not crypto.is_ciphertext(value):
            return str(value)
        try:
            return self._open(value)
        except crypto.CryptoError as exc:
            _report(exc)
            return Unreadable(str(exc), value)


class EncryptedJSONField(_Encrypted):
    """A JSON value stored encrypted (as TEXT: its JSON, sealed)."""

    field_type = dict

    def __init__(self, owner: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.owner = owner

    def to_db_value(self, value: Any, instance: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, UnreadableJSON) and not value:
            return value.ciphertext
        return self._seal(json.dumps(value, ensure_ascii=False, separators=(",", ":")), instance)

    def to_python_value(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, (dict, list)):  # a JSONB column before 0004 made it TEXT
            return value
        if isinstance(value, bytes):
            value = value.decode()
        if not crypto.is_ciphertext(value):
            return json.loads(value)  # stored before encryption
        try:
            return json.loads(self._open(value))
        except crypto.CryptoError as exc:
            _report(exc)
            return UnreadableJSON(str(exc), value)


class PrivateModel(Model):
    """A model with encrypted fields: its rows are built knowing their owner (see the module's note)."""

    class Meta:
        abstract = True

    @classmethod
    def _init_from_db(cls, **kwargs: Any) -> Self:
        token = _row.set(kwargs)
        try:
            return super()._init_from_db(**kwargs)
        finally:
            _row.reset(token)
