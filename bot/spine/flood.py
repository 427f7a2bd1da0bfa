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

from bot.db.models import Direction, Message

WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class Throttled:
    note: bool
    """The first message over the limit: the customer is told, once."""


async def throttled(rows: Sequence[Message], limit: int) -> dict[int, Throttled]:
    """Row id -> Throttled for the rows over the limit (one query for the whole batch); {} when off."""
    timed = [row for row in rows if row.sent_at is not None and row.customer_id is not None]
    if limit <= 0 or not timed:
        return {}
    since = min(_at(row) for row in timed) - WINDOW
    recent = await Message.filter(
        customer_id__in={row.customer_id for row in timed},
        message_direction=Direction.INBOUND,
        sent_at__gt=since,
        id__lte=max(row.id for row in timed),
    ).values_list("id", "customer_id", "sent_at")
    by_customer: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for row_id, customer_id, sent_at in recent:
        by_customer[customer_id].append((sent_at, row_id))
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


def _at(row: Message) -> datetime:
    assert row.sent_at is not None
    return row.sent_at
