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

Every value of an owner is sealed under the owner's data key, never the master key (destroying the key
shreds it all): `PrivateModel.save` and `bulk_create`, and bot/db/writes.py, make the owners' keys first
(bot/db/keystore.ensure_keys). A QuerySet `.update()` of an owned column is refused: it has no row, so
no owner; save the row or use bot/db/writes.update_rows.

Equality lookups on these columns cannot work (every encryption differs): none are needed; phone
numbers stay in clear as the key of everything.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar, Token
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.exceptions import ValidationError
from tortoise.models import Model

from bot import crypto

if TYPE_CHECKING:
    from typing import Self

log = logging.getLogger(__name__)

_row: ContextVar[Mapping[str, Any] | None] = ContextVar("encrypted_row", default=None)
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


def report(error: crypto.CryptoError) -> None:
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

    @cached_property
    def context(self) -> str:
        """`table.column`, the value's place (its associated data); the model's, once it is known."""
        return f"{self.model._meta.db_table}.{self.source_field or self.model_field_name}"

    @cached_property
    def _owner_column(self) -> str | None:
        if self.owner is None:
            return None
        owner_field = self.model._meta.fields_map.get(self.owner)
        return (owner_field.source_field if owner_field else None) or self.owner

    def _owner_of(self, instance: Any) -> str | None:
        if self.owner is None or not isinstance(instance, Model):
            return None
        value = getattr(instance, self.owner, None)
        return None if value is None else str(value)

    def _row_owner(self) -> str | None:
        row = _row.get()
        if row is None or self.owner is None:
            return None
        value = row.get(self._owner_column or self.owner)
        return None if value is None else str(value)

    @property
    def owned_by_pk(self) -> bool:
        return self.owner is not None and self.owner == self.model._meta.pk_attr

    def _seal(self, plaintext: str, instance: Any) -> str:
        if self.owner is not None and not isinstance(instance, Model):
            raise crypto.CryptoError(
                f"{self.context}: written without its row, so without its owner (a QuerySet update?): "
                "save the row, or use bot.db.writes.update_rows"
            )
        owner = self._owner_of(instance)
        if owner is None and self.owned_by_pk:
            raise crypto.CryptoError(f"{self.context}: written before its row has an id (save() it)")
        return self.seal_for(plaintext, owner)

    def seal_for(self, plaintext: str, owner: str | None) -> str:
        """Seal for a known owner (bot/db/writes.insert_rows: values without a model instance)."""
        return crypto.current().encrypt(plaintext.encode(), self.context, owner)

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
        return self._seal(self._text(value), instance)

    def to_db_value_for(self, value: Any, owner: str | None) -> str | None:
        if value is None:
            return None
        if isinstance(value, Unreadable):
            return value.ciphertext
        return self.seal_for(self._text(value), owner)

    def _text(self, value: Any) -> str:
        text = str(value)
        if self.max_length is not None and len(text) > self.max_length:
            raise ValidationError(f"{self.model_field_name}: longer than {self.max_length} characters")
        return text

    def to_python_value(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not crypto.is_ciphertext(value):
            return str(value)
        try:
            return self._open(value)
        except crypto.CryptoError as exc:
            report(exc)
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
        return self._seal(_json(value), instance)

    def to_db_value_for(self, value: Any, owner: str | None) -> str | None:
        if value is None:
            return None
        if isinstance(value, UnreadableJSON) and not value:
            return value.ciphertext
        return self.seal_for(_json(value), owner)

    def to_python_value(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, (dict, list)):  # a JSONB column before 0009 made it TEXT
            return value
        if isinstance(value, bytes):
            value = value.decode()
        if not crypto.is_ciphertext(value):
            return json.loads(value)  # stored before encryption
        try:
            return json.loads(self._open(value))
        except crypto.CryptoError as exc:
            report(exc)
            return UnreadableJSON(str(exc), value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def reading_row(row: Mapping[str, Any]) -> Token[Mapping[str, Any] | None]:
    """Before a row's values are converted without the ORM (bot/db/rows.py): its encrypted fields take
    their owner from it, as on the ORM's reads. `done_reading(token)` after."""
    return _row.set(row)


def done_reading(token: Token[Mapping[str, Any] | None]) -> None:
    _row.reset(token)


def encrypted_fields(model: type[Model]) -> list[_Encrypted]:
    """The encrypted fields of `model`, in declaration order."""
    return [field for field in model._meta.fields_map.values() if isinstance(field, _Encrypted)]


def owners_of(model: type[Model], rows: Iterable[Model]) -> set[int]:
    """The customers whose data keys writing `rows` needs: the known owners of values to seal."""
    owned = [(f.owner, f.model_field_name) for f in encrypted_fields(model) if f.owner is not None]
    found: set[int] = set()
    for row in rows:
        for owner, name in owned:
            value = getattr(row, owner, None)
            if value is not None and getattr(row, name, None) is not None:
                found.add(int(value))
    return found


KeyStore = Callable[[Iterable[int]], Awaitable[None]]
_key_store: KeyStore | None = None


def use_key_store(ensure_keys: KeyStore) -> None:
    """Where rows get their owners' data keys before they are written (bot/db/keystore.py registers
    itself: the fields know no table)."""
    global _key_store
    _key_store = ensure_keys


async def _ensure_keys(owners: set[int]) -> None:
    if not owners:
        return
    if _key_store is None:
        raise crypto.NotConfigured("bot.db.keystore is not loaded: nothing makes the customers' data keys")
    await _key_store(owners)


class PrivateModel(Model):
    """A model with encrypted fields: its rows are built knowing their owner, and saved with their
    owner's data key made first (see the module's note)."""

    class Meta:
        abstract = True

    async def save(
        self,
        using_db: Any = None,
        update_fields: Iterable[str] | None = None,
        force_create: bool = False,
        force_update: bool = False,
    ) -> None:
        await _ensure_keys(owners_of(type(self), [self]))
        deferred: dict[str, Any] = {}
        if self.pk is None:  # a value owned by the row's own id waits for the id
            for field in encrypted_fields(type(self)):
                name = field.model_field_name
                if field.owned_by_pk and getattr(self, name, None) is not None:
                    deferred[name] = getattr(self, name)
                    setattr(self, name, None)
        await super().save(using_db, update_fields, force_create, force_update)
        if deferred:
            for name, value in deferred.items():
                setattr(self, name, value)
            await _ensure_keys({int(self.pk)})
            await super().save(using_db, list(deferred))

    @classmethod
    def bulk_create(  # type: ignore[override]
        cls, objects: Sequence[Self], *args: Any, **kwargs: Any
    ) -> Any:
        """Tortoise's, with the owners' data keys made first (awaited like Tortoise's)."""
        return _bulk_create(cls, objects, args, kwargs)

    @classmethod
    def _init_from_db(cls, **kwargs: Any) -> Self:
        token = _row.set(kwargs)
        try:
            return super()._init_from_db(**kwargs)
        finally:
            _row.reset(token)


async def _bulk_create(model: type[PrivateModel], objects: Sequence[Any], args: Any, kwargs: Any) -> Any:
    await _ensure_keys(owners_of(model, objects))
    return await super(PrivateModel, model).bulk_create(objects, *args, **kwargs)  # type: ignore[misc]
