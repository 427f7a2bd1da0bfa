"""Flood: a customer writing more than `limits.inbound_per_minute` messages in a minute.

Their messages are all stored (the webhook commits them before this runs), but those over the limit in
the sliding minute before each one are not run through the engine: one burst cannot make the bot send a
burst, nor hold up other customers' turns. The first message over the limit gets one polite note. The
minute is the customer's own (their customer id, whatever address they wrote from; each message's
WhatsApp timestamp), so a backlog Meta redelivers at once
after an outage is not mistaken for a flood.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.db import rows as rows_of
from bot.db import sql
from bot.db.models import Direction, Message

WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class Throttled:
    note: bool
    """The first message over the limit: the customer is told, once."""


_RECENT_INBOUND = '"message_direction" = ? AND "sent_at" > ? AND "id" <= ? AND "customer_id" IN ({0})'
"""A batch's customers' inbound rows since a time, read through the (customer_id, id) index (SQLite took
the index on `message_direction` while there was one, and read every inbound row ever stored:
migration 0011)."""


async def throttled(rows: Sequence[Message], limit: int) -> dict[int, Throttled]:
    """Row id -> Throttled for the rows over the limit; {} when off. One grouped count for the whole
    batch, and the recent rows of only those customers it finds over the limit (most often none)."""
    timed = [row for row in rows if row.sent_at is not None and row.customer_id is not None]
    if limit <= 0 or not timed:
        return {}
    since = min(_at(row) for row in timed) - WINDOW
    last = max(row.id for row in timed)
    busy = await _busy({row.customer_id for row in timed if row.customer_id is not None}, since, last, limit)
    timed = [row for row in timed if row.customer_id in busy]
    if not timed:
        return {}
    recent = await rows_of.select(  # partial rows, their sent_at read as the ORM reads it
        Message,
        _RECENT_INBOUND.format(sql.marks(len(busy))),
        [Direction.INBOUND.value, since, last, *sorted(busy)],
        ("id", "customer_id", "sent_at"),
    )
    by_customer: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for message in recent:
        if message.customer_id is not None and message.sent_at is not None:
            by_customer[message.customer_id].append((message.sent_at, message.id))
    found: dict[int, Throttled] = {}
    for row in timed:
        at = _at(row)
        count = sum(
            1
            for sent_at, row_id in by_customer[row.customer_id or 0]
            if row_id <= row.id and at - WINDOW < sent_at <= at
        )
        if count > limit:
            found[row.id] = Throttled(note=count == limit + 1)
    return found


async def _busy(customers: set[int], since: datetime, last: int, limit: int) -> set[int]:
    """The customers with more than `limit` inbound rows since `since` (up to row `last`): only they can
    have a row over the limit, as each row's minute lies within that span. One grouped count instead of
    every recent row of every customer of the batch (a busy batch reads thousands), most often none."""
    if not customers:
        return set()
    found = await sql.fetch(
        f'SELECT "customer_id" FROM "message" WHERE {_RECENT_INBOUND.format(sql.marks(len(customers)))}'
        ' GROUP BY "customer_id" HAVING COUNT(*) > ?',
        [Direction.INBOUND.value, since, last, *sorted(customers), limit],
    )
    return {int(row["customer_id"]) for row in found}


def _at(row: Message) -> datetime:
    assert row.sent_at is not None
    return row.sent_at
