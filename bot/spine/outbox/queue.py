"""The one way to queue a message: a `queued` row written inside the producer's own transaction.

Inbox replies, order notifications, appointment reminders, technicians' messages, the relay and the
handoff guards all come through here, so every outbox row has the same shape and the sender can rely on
it: the customer it goes to and their address at the time (the phone when known, else the BSUID), the
`OutboundMessage` value as the payload, due at once, and `created_at` set from the producer's clock (the
retry horizon counts from it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache

from tortoise import timezone

from bot.db import rows
from bot.db.models import Customer, DeliveryStatus, Direction, Message
from bot.db.writes import Writes
from bot.whatsapp.errors import CODE_OPTED_OUT
from bot.whatsapp.outbound import Media, OutboundMessage

TITLE_MAX = 1000
"""The longest error title kept on a row (Message.error_title)."""
OPTED_OUT_TITLE = (
    "not sent: the customer opted out (STOP) of the messages the shop starts; START opts back in"
)


def outbound_row(
    customer: Customer,
    message: OutboundMessage,
    *,
    now: datetime,
    reply_to: str | None = None,
    order_id: int | None = None,
    technician_id: int | None = None,
    initiated: bool = False,
    about_customer_id: int | None = None,
) -> Message:
    """A queued row, not yet saved: for producers that write many at once (`write_outbound`).

    `about_customer_id`: the relay's copy to a technician, the customer it is about (Message's note).
    `initiated`: a message the shop starts (an order's status notice, an appointment's reminder or
    change notice): to a customer who opted out (Customer.opted_out_at) it is written refused, the
    reason on the row, never sent."""
    media = message if isinstance(message, Media) else None  # only media carry a file (asking the
    # others, pydantic raises and catches an AttributeError per row)
    row = rows.new(  # Message(...) without its per-field conversions: these values are already made
        Message,
        {
            "customer_id": customer.id,
            "address": customer.address,
            "message_direction": Direction.OUTBOUND,
            "message_type": message.message_type,
            "message_content": message.log_content(),
            "file_url": media.file_url if media else None,
            "file_name": media.filename if media else None,
            "delivery_status": DeliveryStatus.QUEUED,
            "payload": message.model_dump(mode="json"),
            "reply_to": reply_to,
            "order_id": order_id,
            "technician_id": technician_id,
            "about_customer_id": about_customer_id,
            "next_attempt_at": now,
            "created_at": now,
        },
    )
    if initiated and customer.opted_out_at is not None:
        fail_row(row, now, CODE_OPTED_OUT, OPTED_OUT_TITLE)
    return row


async def write_outbound(rows: Sequence[Message], writes: Writes) -> None:
    """INSERT `outbound_row`s (every column but the id, as `Message.bulk_create` writes them) as rows
    of values (bot/db/writes.insert_rows): one statement run per row, without the ORM's bulk query
    built per batch; encrypted columns sealed for the row's customer. The rows get their stamps as
    `bulk_create` gives them (`updated_at` now, `created_at` now unless set); as with it, not their ids.
    The statement goes with the producer's other `writes`, inside its transaction."""
    if not rows:
        return
    columns = _outbound_columns()
    stamp = timezone.localtime()
    read_back = Message._meta.fields_map["updated_at"].to_python_value(stamp)
    values = []
    for row in rows:
        row.updated_at = read_back
        if row.created_at is None:
            row.created_at = read_back
        values.append([getattr(row, name) for name in columns])
    await writes.insert(Message, columns, values)


@cache
def _outbound_columns() -> tuple[str, ...]:
    """Message's fields but its id, in the model's order: known once Tortoise is initialised (the
    customer's `customer_id` is only then), so asked at the write, not at import."""
    meta = Message._meta
    return tuple(name for name in meta.fields_db_projection if name != meta.pk_attr)


def fail_row(row: Message, now: datetime, code: int, title: str) -> None:
    """The row fails for good, never (again) sent: the code and the title say why (the panel and the
    message log show them). Not saved: the caller writes it with its batch."""
    row.delivery_status = DeliveryStatus.FAILED
    row.failed_at = now
    row.next_attempt_at = None
    row.error_code = code
    row.error_title = title[:TITLE_MAX]


async def enqueue(
    customer: Customer,
    message: OutboundMessage,
    *,
    now: datetime,
    reply_to: str | None = None,
    order_id: int | None = None,
    technician_id: int | None = None,
    initiated: bool = False,
) -> Message:
    """Queue one message. Call inside the transaction of the change that causes it, then wake the
    outbox after that transaction commits (the sender only sees committed rows)."""
    row = outbound_row(
        customer,
        message,
        now=now,
        reply_to=reply_to,
        order_id=order_id,
        technician_id=technician_id,
        initiated=initiated,
    )
    await row.save()
    return row
