"""Deleting many rows without blocking the inbox: in batches, each its own short transaction.

Retention (bot/privacy/retention.py) and erasure (bot/privacy/erasure.py) both delete this way. SQLite
has one writer: the webhook and the inbox wait for at most one batch, and get their turn between two.
A message's stored media file goes before its row (a row without its file says "gone"; a file without
its row would be kept for ever).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from tortoise.models import Model
from tortoise.queryset import QuerySet

from bot.db.models import Message
from bot.db.transactions import atomic
from bot.db.writes import update_rows
from bot.media.store import MediaStore, is_stored

BATCH = 500


@dataclass
class Deleted:
    rows: int = 0
    media_files: int = 0


async def delete_messages(query: QuerySet[Message], media: MediaStore, batch: int = BATCH) -> Deleted:
    """Every message `query` matches, with its stored media file, `batch` rows at a time."""
    done = Deleted()
    while rows := await query.limit(batch).values_list("id", "file_url"):
        for _, file_url in rows:
            if is_stored(file_url) and await media.delete(str(file_url)):
                done.media_files += 1
        async with atomic():
            await Message.filter(id__in=[row_id for row_id, _ in rows]).delete()
        done.rows += len(rows)
        await asyncio.sleep(0)  # the other workers' turn between two batches
    return done


async def delete_rows(query: QuerySet[Any], batch: int = BATCH) -> int:
    """Every row `query` matches, `batch` at a time, by id (delete() would count cascaded rows too);
    returns how many."""
    model: type[Model] = query.model
    count = 0
    while ids := await query.limit(batch).values_list("id", flat=True):
        async with atomic():
            await model.filter(id__in=list(ids)).delete()
        count += len(ids)
        await asyncio.sleep(0)
    return count


async def set_in_batches(query: QuerySet[Any], batch: int = BATCH, **values: Any) -> int:
    """Set `values` on every row `query` matches, `batch` at a time, by id; returns how many. The rows
    are never read (after an erasure's shredding their encrypted values are noise) and the values go
    through each field's to_db_value as on save (bot/db/writes.py), encrypted fields too. The query must
    stop matching a row once it is set (or the loop would not end)."""
    model: type[Model] = query.model
    fields = [*values, *(name for name in ("updated_at",) if name in model._meta.fields_map)]
    count = 0
    while ids := await query.limit(batch).values_list("id", flat=True):
        rows = [model(id=row_id, **values) for row_id in ids]
        async with atomic():
            await update_rows(model, rows, fields)
        count += len(ids)
        await asyncio.sleep(0)
    return count
