"""Bringing stored data under the current keys, in batches that can be stopped and resumed.

- `rotate()`: `bot keys rotate`. Every customer's data key re-wrapped under the first master key of
  BOT_ENCRYPTION_KEYS; the values themselves are not touched. One transaction per batch; keys already
  under the first master key are skipped, so a stopped run resumes where it was. A key that does not
  open (its master key is not configured) is counted and left as it is.
- `encrypt_existing()`: `bot keys encrypt-existing`. Every plaintext value of an encrypted column
  (a database from before 0009_encryption) sealed under its owner's data key, and values sealed under
  the master key for nobody sealed anew: for the row's owner when it has one now (written before its
  customer was known), else under the first master key when another sealed them (after a rotation).
  Rows already done are skipped, so it too resumes by running again.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tortoise import connections
from tortoise.models import Model

from bot import crypto
from bot.db.encrypted import (
    EncryptedJSONField,
    EncryptedTextField,
    PrivateModel,
    Unreadable,
    UnreadableJSON,
    encrypted_fields,
)
from bot.db.keystore import ensure_keys
from bot.db.models import DataKey
from bot.db.reown import private_models
from bot.db.transactions import atomic
from bot.db.writes import update_rows

BATCH_SIZE = 500
Progress = Callable[[str, int, int], None]
"""(what, done, of): called after every committed batch."""


@dataclass
class RotateReport:
    total: int = 0
    rewrapped: int = 0
    already: int = 0
    """Under the first master key before this run (a resumed run's earlier work)."""
    failed: dict[int, str] = field(default_factory=dict)
    """Customer id → why their key could not be re-wrapped (it is left as it was)."""


async def rotate(batch_size: int = BATCH_SIZE, progress: Progress | None = None) -> RotateReport:
    """Re-wrap every data key not under the first master key, `batch_size` keys per transaction."""
    ring = crypto.current()
    primary = ring.primary.id
    report = RotateReport(total=await DataKey.all().count())
    report.already = await DataKey.filter(master_key_id=primary).count()
    after = -1
    while True:
        rows = (
            await DataKey.filter(customer_id__gt=after)
            .exclude(master_key_id=primary)
            .order_by("customer_id")
            .limit(batch_size)
        )
        if not rows:
            break
        after = rows[-1].customer_id
        moved = []
        for row in rows:
            try:
                wrapped = ring.rewrap(
                    crypto.WrappedKey(row.master_key_id, base64.b64decode(row.wrapped_key)),
                    str(row.customer_id),
                )
            except crypto.CryptoError as exc:
                report.failed[row.customer_id] = str(exc)
                continue
            row.wrapped_key = base64.b64encode(wrapped.blob).decode()
            row.master_key_id = wrapped.master_key_id
            moved.append(row)
        async with atomic():
            await update_rows(DataKey, moved, ["wrapped_key", "master_key_id"])
        report.rewrapped += len(moved)
        if progress is not None:
            progress("data keys", report.already + report.rewrapped, report.total)
    return report


@dataclass
class EncryptReport:
    sealed: dict[str, int] = field(default_factory=dict)
    """table.column → values sealed by this run."""
    rows: dict[str, int] = field(default_factory=dict)
    """table → rows looked at."""

    @property
    def total(self) -> int:
        return sum(self.sealed.values())


def _placeholder(connection: Any, position: int) -> str:
    return f"${position}" if connection.capabilities.dialect == "postgres" else "?"


def _owner_column(model: type[Model], owner: str) -> str:
    found = model._meta.fields_map[owner]
    return found.source_field or owner


def _needs_sealing(value: Any, row_owner: Any, primary: str) -> bool:
    """Plaintext; or sealed for nobody while the row has an owner now (written before its customer was
    known); or sealed for nobody under a master key that is not the first (rotated out)."""
    if value is None:
        return False
    if isinstance(value, (dict, list)):
        return True
    if not isinstance(value, str) or not crypto.is_ciphertext(value):
        return True
    try:
        header = crypto.parse(value)[0]
    except crypto.CryptoError:
        return False  # unreadable stays as it is: restoring its key restores it
    if header.owner:
        return False  # under its owner's data key: `bot keys rotate` re-wraps that key
    return row_owner is not None or header.key != f"m.{primary}"


def _plain(field: EncryptedTextField | EncryptedJSONField, value: Any) -> Any:
    if isinstance(value, str) and crypto.is_ciphertext(value):
        return field.to_python_value(value)
    if isinstance(field, EncryptedJSONField):
        return json.loads(value) if isinstance(value, (str, bytes)) else value
    return str(value)


async def encrypt_existing(batch_size: int = BATCH_SIZE, progress: Progress | None = None) -> EncryptReport:
    """Seal every plaintext value of the encrypted columns for its owner, `batch_size` rows a batch."""
    report = EncryptReport()
    models: list[type[PrivateModel]] = private_models()
    for model in models:
        await _encrypt_table(model, batch_size, report, progress)
    return report


async def _encrypt_table(
    model: type[PrivateModel], batch_size: int, report: EncryptReport, progress: Progress | None
) -> None:
    connection = connections.get("default")
    table = model._meta.db_table
    pk = model._meta.db_pk_column
    columns = [f for f in encrypted_fields(model) if isinstance(f, (EncryptedTextField, EncryptedJSONField))]
    owners = {f.owner for f in columns if f.owner is not None}
    [owner] = owners
    owner_column = _owner_column(model, owner)
    names = [f.source_field or f.model_field_name for f in columns]
    selected = ", ".join(f'"{c}"' for c in dict.fromkeys([pk, owner_column, *names]))
    total = (await connection.execute_query(f'SELECT COUNT(*) AS n FROM "{table}"'))[1][0]["n"]
    select = (
        f'SELECT {selected} FROM "{table}" WHERE "{pk}" > {_placeholder(connection, 1)} '
        f'ORDER BY "{pk}" LIMIT {int(batch_size)}'
    )
    after: Any = -1
    seen = 0
    primary = crypto.current().primary.id
    while True:
        _, rows = await connection.execute_query(select, [after])
        if not rows:
            break
        after = rows[-1][pk]
        seen += len(rows)
        updates: dict[str, list[list[Any]]] = {}
        async with atomic():
            await ensure_keys(row[owner_column] for row in rows)
            for row in rows:
                row_owner = row[owner_column]
                for column, name in zip(columns, names, strict=True):
                    if not _needs_sealing(row[name], row_owner, primary):
                        continue
                    plain = _plain(column, row[name])
                    if isinstance(plain, (Unreadable, UnreadableJSON)):
                        continue
                    owner_text = None if row_owner is None else str(row_owner)
                    sealed = column.to_db_value_for(plain, owner_text)
                    updates.setdefault(name, []).append([sealed, row[pk]])
            writer = connections.get("default")  # the transaction's (the outer one waits for it)
            for name, values in updates.items():
                sql = (
                    f'UPDATE "{table}" SET "{name}" = {_placeholder(connection, 1)} '
                    f'WHERE "{pk}" = {_placeholder(connection, 2)}'
                )
                await writer.execute_many(sql, values)
        for name, values in updates.items():
            key = f"{table}.{name}"
            report.sealed[key] = report.sealed.get(key, 0) + len(values)
        report.rows[table] = seen
        if progress is not None:
            progress(table, seen, total)
