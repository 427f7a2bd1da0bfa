"""Writing many rows' changes at once, cheaply: one parameterised UPDATE, executed for every row; and
several such statements at once (`Writes`), in one trip to SQLite's thread.

Tortoise's `bulk_update` builds one statement with a `CASE WHEN id = … THEN …` per row and column, so its
cost in Python grows with rows x columns and the database parses a new statement each time (the first
profile of `make bench` put 13% of the bot's time there). `update_rows` takes Tortoise's own per-row
UPDATE (cached per column list, in the dialect's placeholders) and runs it once per row through the
driver's executemany: one round trip on SQLite's thread or asyncpg's pipeline. Values go through each
field's `to_db_value`, as `save()` does, so a field that converts (JSON, enums, `auto_now` stamps,
encrypted fields) writes what it would on save; an `auto_now` stamp is read once for all the rows.
Encrypted values are sealed for their row's owner (a customer, under their data key: both make the
owners' keys first, bot/db/keystore.ensure_keys).

`Writes` gathers a transaction's statements that return nothing (updates, inserts, deletes) and runs
them in order, together: on SQLite in one trip to its thread, with the transaction's COMMIT when they
are its last. Under load a trip costs far more than SQLite's work (its answer waits for a turn of the
busy event loop while the one connection stays held: bot/db/sqlite.py), so a batch's seven writes and
its commit in one trip leave that much more of the connection to the webhook's commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from tortoise import connections, timezone
from tortoise.backends.sqlite.client import SqliteTransactionWrapper
from tortoise.fields import DatetimeField, Field
from tortoise.models import Model

from bot.db import sql as hand_written
from bot.db.encrypted import EncryptedJSONField, EncryptedTextField, encrypted_fields, owners_of
from bot.db.keystore import ensure_keys
from bot.db.sqlite import Connection
from bot.db.transactions import commits_with_next_statement

M = TypeVar("M", bound=Model)

Statement = tuple[str, list[list[Any]]]
"""A statement in its dialect's placeholders and the parameters of each run of it (executemany)."""


class Writes:
    """Statements that return nothing, gathered and then run in order (`run`): on SQLite, inside a
    transaction, in one trip to its thread; elsewhere one after the other. Build it inside the
    transaction it writes in: `update` and `insert` make the owners' keys as they are given (those
    writes go at once), and the rows' stamps are set then."""

    def __init__(self) -> None:
        self.statements: list[Statement] = []

    def __bool__(self) -> bool:
        return bool(self.statements)

    async def update(self, model: type[M], rows: Sequence[M], fields: Sequence[str]) -> None:
        """`update_rows`, run with the others."""
        if rows:
            self.statements.append(await _update_statement(model, rows, fields))

    async def insert(
        self,
        model: type[M],
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        ignore_conflicts: bool = False,
    ) -> None:
        """`insert_rows`, run with the others."""
        if rows:
            self.statements.append(await _insert_statement(model, columns, rows, ignore_conflicts))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """A hand-written statement with `?` placeholders and parameters as bot/db/sql.py passes them."""
        client = hand_written.connection()
        sqlite = client.capabilities.dialect == "sqlite"
        self.statements.append(
            (
                sql if sqlite else hand_written.numbered(sql),
                [[hand_written.param(value, sqlite) for value in params]],
            )
        )

    async def run(self, *, last: bool = False) -> None:
        """Run the statements gathered, in order, and forget them. `last`: they end the caller's
        transaction, and on SQLite its COMMIT goes with them (`commits_with_next_statement`)."""
        statements, self.statements = self.statements, []
        if not statements:
            return
        client = hand_written.connection()
        connection = getattr(client, "_connection", None)
        if isinstance(client, SqliteTransactionWrapper) and isinstance(connection, Connection):
            if last:
                commits_with_next_statement()
            async with client.acquire_connection():
                await connection.run_together(statements)
            return
        for sql, values in statements:  # PostgreSQL's pipeline, or SQLite outside a transaction
            await client.execute_many(sql, values)


async def update_rows(model: type[M], rows: Sequence[M], fields: Sequence[str]) -> None:
    """UPDATE `fields` of each of `rows` (already saved), inside the caller's transaction if any."""
    if not rows:
        return
    connection = connections.get(model._meta.default_connection or "default")
    await connection.execute_many(*await _update_statement(model, rows, fields))


async def _update_statement(model: type[M], rows: Sequence[M], fields: Sequence[str]) -> Statement:
    if encrypted_fields(model):
        await ensure_keys(owners_of(model, rows))
    connection = connections.get(model._meta.default_connection or "default")
    executor = connection.executor_class(model=model, db=connection)
    sql = executor.get_update_sql(list(fields), None)
    fields_map = model._meta.fields_map
    converters = [fields_map[name] for name in fields]
    stamps = _stamps(converters)
    values = []
    for row in rows:
        for name, (_, read_back) in stamps.items():
            setattr(row, name, read_back)
        values.append(
            [
                stamps[field.model_field_name][0]
                if field.model_field_name in stamps
                else field.to_db_value(getattr(row, field.model_field_name), row)
                for field in converters
            ]
            + [row.pk]
        )
    return sql, values


def _stamps(converters: Sequence[Field[Any]]) -> dict[str, tuple[datetime, Any]]:
    """The `auto_now` fields among `converters` (`updated_at`), each with the time written and the
    value read back, as its `to_db_value` makes them for a saved row, but once for all the rows (the
    same statement, the same transaction) rather than a clock reading and a conversion per row."""
    stamps: dict[str, tuple[datetime, Any]] = {}
    for field in converters:
        if isinstance(field, DatetimeField) and field.auto_now:
            now = timezone.localtime()
            stamps[field.model_field_name] = (now, field.to_python_value(now))
    return stamps


_INSERTS: dict[tuple[type, type[Model], tuple[str, ...], bool], str] = {}
"""The statements built, by dialect (its executor), model, columns and conflict rule."""


_Converter = tuple[Callable[[Any, Any], Any], int | None]
_CONVERTERS: dict[tuple[type[Model], tuple[str, ...]], list[_Converter]] = {}
"""How each column's values are converted (`_converter`), by model and columns: made once, not per batch."""


async def insert_rows(
    model: type[M],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    ignore_conflicts: bool = False,
    last: bool = False,
) -> None:
    """INSERT many rows, each the values of `columns` (field names, in order), without a model instance
    per row: one parameterised statement (Tortoise's own, in the dialect's placeholders, with ON CONFLICT
    DO NOTHING when `ignore_conflicts`) run per row through executemany, inside the caller's transaction
    if any. Values go through each field's `to_db_value` as they would on save, except that `auto_now`
    stamps are not made here: give `created_at` and `updated_at` among the columns. `last`: the
    statement ends the caller's transaction (`commits_with_next_statement`)."""
    if not rows:
        return
    statement = await _insert_statement(model, columns, rows, ignore_conflicts)
    if last:
        commits_with_next_statement()
    await connections.get(model._meta.default_connection or "default").execute_many(*statement)


async def _insert_statement(
    model: type[M], columns: Sequence[str], rows: Sequence[Sequence[Any]], ignore_conflicts: bool
) -> Statement:
    connection = connections.get(model._meta.default_connection or "default")
    names = tuple(columns)
    key = (connection.executor_class, model, names, ignore_conflicts)
    sql = _INSERTS.get(key)
    if sql is None:
        executor = connection.executor_class(model=model, db=connection)
        projection = model._meta.fields_db_projection
        sql = str(
            executor._prepare_insert_statement(
                [projection[name] for name in columns], has_generated=False, ignore_conflicts=ignore_conflicts
            )
        )
        _INSERTS[key] = sql
    converters = _CONVERTERS.get((model, names))
    if converters is None:
        converters = [_converter(model, name, list(names)) for name in names]
        _CONVERTERS[(model, names)] = converters
    if any(owner is not None for _, owner in converters):
        await ensure_keys(row[owner] for _, owner in converters if owner is not None for row in rows)
    values = [
        [
            convert(value, model if owner is None else row[owner])
            for (convert, owner), value in zip(converters, row, strict=True)
        ]
        for row in rows
    ]
    return sql, values


def _converter(model: type[Model], name: str, columns: list[str]) -> _Converter:
    """How `insert_rows` converts a column's values: `to_db_value` with the model class as `instance`
    (the fields then convert, never stamp), but a nullable column's None, kept (what every field's
    `to_db_value` returns for it: most of a queued reply's columns are empty); or, for an encrypted
    column, sealed for the row's owner (which must be among the columns: the position returned)."""
    field = model._meta.fields_map[name]
    if not isinstance(field, (EncryptedTextField, EncryptedJSONField)) or field.owner is None:
        convert = field.to_db_value
        if field.null:  # its None is written as None (no validator runs on it): its call skipped
            return (lambda value, model: None if value is None else convert(value, model)), None
        return convert, None
    if field.owner not in columns:
        raise ValueError(
            f"{model.__name__}.{name} is encrypted for its {field.owner}: insert that column too"
        )
    return (
        lambda value, owner: field.to_db_value_for(value, None if owner is None else str(owner))
    ), columns.index(field.owner)
