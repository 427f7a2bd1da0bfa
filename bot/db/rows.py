"""Rows read with a hand-written SELECT and built as model instances without the QuerySet; and new
instances built without the ORM's per-field constructor (`new`).

For the inbox's reads of every batch (its pending rows, their customers and conversations): building
the ORM's query and its instances cost more in Python than the database takes to answer. The rows come
out as Tortoise builds them (each field's value as `to_python_value` makes it, encrypted fields opened
for their row's owner, `_saved_in_db`), so they save and update as usual; a row read with fewer
columns is partial, as `.only()` makes it: only what was read may be saved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from copy import deepcopy
from functools import lru_cache
from typing import Any, TypeVar

from ciso8601 import parse_datetime
from tortoise import timezone
from tortoise.fields import DatetimeField, Field
from tortoise.models import Model

from bot.db import sql
from bot.db.encrypted import PrivateModel, done_reading, reading_row

M = TypeVar("M", bound=Model)

Plan = tuple[tuple[str, ...], list[tuple[int, Callable[[Any], Any]]]]
"""The attribute each column fills; the positions whose values are converted, and how."""

_PLANS: dict[tuple[type[Model], tuple[str, ...], str], Plan] = {}
_COLUMNS: dict[tuple[type[Model], tuple[str, ...]], tuple[str, ...]] = {}


def columns_of(model: type[Model], *leave_out: str) -> tuple[str, ...]:
    """The model's columns, but `leave_out` (field names). Known once Tortoise is initialised (a
    relation's `_id` column is only then), so asked at the read, not at import."""
    key = (model, leave_out)
    columns = _COLUMNS.get(key)
    if columns is None:
        projection = model._meta.fields_db_projection
        columns = tuple(column for name, column in projection.items() if name not in leave_out)
        _COLUMNS[key] = columns
    return columns


@lru_cache(maxsize=256)
def listed(columns: tuple[str, ...]) -> str:
    """`"a", "b", ...`: a SELECT's column list, quoted; made once per column list, not per read."""
    return ", ".join(f'"{column}"' for column in columns)


async def select(
    model: type[M], where: str, params: Sequence[Any], columns: Sequence[str] | None = None
) -> list[M]:
    """`SELECT columns FROM model's table WHERE where` (`where` may go on with ORDER BY, LIMIT, FOR
    UPDATE: `?` placeholders, parameters as bot/db/sql.py passes them), as instances of `model`."""
    wanted = tuple(columns) if columns is not None else columns_of(model)
    found = await sql.fetch_rows(
        f'SELECT {listed(wanted)} FROM "{model._meta.db_table}" WHERE {where}', params
    )
    return hydrate(model, found, wanted, sql.connection().capabilities.dialect)


def hydrate(
    model: type[M], found: Sequence[Sequence[Any]], columns: tuple[str, ...], dialect: str
) -> list[M]:
    """Instances of `model` from rows holding `columns` in that order, as the ORM's reads on
    `dialect` build them."""
    attributes, conversions = _plan(model, columns, dialect)
    kept = {
        "_partial": len(columns) < len(model._meta.fields_db_projection),
        "_saved_in_db": True,
        "_custom_generated_pk": model._meta.db_pk_column not in model._meta.generated_db_fields,
    }
    index = (
        {column: position for position, column in enumerate(columns)}
        if issubclass(model, PrivateModel)
        else None
    )
    built: list[M] = []
    for row in found:
        values = list(row)
        token = reading_row(_Named(row, index)) if index is not None else None
        try:
            for position, convert in conversions:
                if (value := values[position]) is not None:
                    values[position] = convert(value)
        finally:
            if token is not None:
                done_reading(token)
        instance = model.__new__(model)
        state = instance.__dict__  # what Tortoise's _init_from_db sets, as it sets it (no __setattr__)
        state.update(kept)
        state["_await_when_save"] = {}
        state.update(zip(attributes, values, strict=True))
        built.append(instance)
    return built


def _plan(model: type[Model], columns: tuple[str, ...], dialect: str) -> Plan:
    """The attribute of each column, and how the values that need it are converted: Tortoise's own
    split of a model's fields (those the driver already converts, those a type call converts, those
    that need `to_python_value`), which depends on the database (one process meets both only in the
    tests). None stays None, as every field's conversion leaves it."""
    key = (model, columns, dialect)
    plan = _PLANS.get(key)
    if plan is None:
        meta = model._meta
        ways: dict[str, tuple[str, Callable[[Any], Any] | None]] = {}
        ways.update({column: (name, None) for column, name, _ in meta.db_native_fields})
        ways.update({column: (name, f.field_type) for column, name, f in meta.db_default_fields})
        ways.update({column: (name, _reader(f, dialect)) for column, name, f in meta.db_complex_fields})
        attributes = tuple(ways[column][0] for column in columns)
        conversions = [
            (position, convert)
            for position, column in enumerate(columns)
            if (convert := ways[column][1]) is not None
        ]
        plan = _PLANS[key] = (attributes, conversions)
    return plan


def _reader(field: Field[Any], dialect: str) -> Callable[[Any], Any]:
    """How a complex field's values are converted: its `to_python_value`, but for a datetime on SQLite
    (text there), which is parsed and put in Tortoise's zone directly: what its `to_python_value` does,
    without asking the settings again for every value (a tenth of the cost)."""
    if not (isinstance(field, DatetimeField) and dialect == "sqlite" and timezone.get_use_tz()):
        return field.to_python_value
    zone, slow = timezone.get_default_timezone(), field.to_python_value

    def read(value: Any) -> Any:
        if not isinstance(value, str):
            return slow(value)
        parsed = parse_datetime(value)
        return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed.astimezone(zone)

    return read


_BLANKS: dict[type[Model], tuple[dict[str, Any], tuple[str, ...]] | None] = {}


def new(model: type[M], values: Mapping[str, Any]) -> M:
    """An unsaved instance, as `model(**values)` builds it, for values already of their fields' Python
    types (what `to_python_value` would return: enums, dicts, datetimes, plain text) and relations by
    their `_id` column. The other fields take their defaults from a blank instance the ORM built once
    per model: its constructor converts every value and sets every field through `__setattr__`, which
    cost the inbox 24 µs per reply. A model whose defaults are made per instance (callables) is built by
    the ORM itself."""
    if model in _BLANKS:
        blank = _BLANKS[model]
    else:
        blank = _BLANKS[model] = _blank(model)
    if blank is None or model._meta.pk_attr in values:  # a chosen primary key: the ORM notes it
        return model(**values)
    state, mutable = blank
    instance = model.__new__(model)
    kept = instance.__dict__
    kept.update(state)
    for name in mutable:
        kept[name] = deepcopy(state[name])
    kept["_await_when_save"] = {}
    kept.update(values)
    return instance


def _blank(model: type[Model]) -> tuple[dict[str, Any], tuple[str, ...]] | None:
    """What `model()` sets on a new instance, and which of those values are mutable (copied per
    instance); None when a field's default is made per instance."""
    if any(callable(field.default) for field in model._meta.fields_map.values()):
        return None
    state = dict(model().__dict__)
    mutable = tuple(
        name
        for name, value in state.items()
        if name != "_await_when_save" and not isinstance(value, (int, float, str, bool, bytes, type(None)))
    )
    return state, mutable


class _Named(Mapping[str, Any]):
    """A positional row read by column name: what an encrypted field asks of its row (its owner)."""

    __slots__ = ("_index", "_row")

    def __init__(self, row: Sequence[Any], index: Mapping[str, int]) -> None:
        self._row, self._index = row, index

    def __getitem__(self, column: str) -> Any:
        return self._row[self._index[column]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)
