"""The one way to queue a message: a `queued` row written inside the producer's own transaction.

Inbox replies, order notifications, appointment reminders, technicians' messages, the relay and the
handoff guards all come through here, so every outbox row has the same shape and the sender can rely on
it: the customer it goes to and their address at the time (the phone when known, else the BSUID), the
`OutboundMessage` value as the payload, due at once, and `created_at` set from the producer's clock (the
retry horizon counts from it).
"""

from __future__ import annotations

from datetime import datetime

from bot.db.models import Customer, DeliveryStatus, Direction, Message
from bot.whatsapp.outbound import OutboundMessage


def outbound_row(
    customer: Customer,
    message: OutboundMessage,
    *,
    now: datetime,
    reply_to: str | None = None,
    order_id: int | None = None,
    technician_id: int | None = None,
) -> Message:
    """A queued row, not yet saved: for producers that write many at once (`Message.bulk_create`)."""
    return Message(
        customer_id=customer.id,
        address=customer.address,
        message_direction=Direction.OUTBOUND,
        message_type=message.message_type,
        message_content=message.log_content(),
        file_url=getattr(message, "file_url", None),
        file_name=getattr(message, "filename", None),
        delivery_status=DeliveryStatus.QUEUED,
        payload=message.model_dump(mode="json"),
        reply_to=reply_to,
        order_id=order_id,
        technician_id=technician_id,
        next_attempt_at=now,
        created_at=now,
    )


async def enqueue(
    customer: Customer,
    message: OutboundMessage,
    *,
    now: datetime,
    reply_to: str | None = None,
    order_id: int | None = None,
    technician_id: int | None = None,
) -> Message:
    """Queue one message. Call inside the transaction of the change that causes it, then wake the
    outbox after that transaction commits (the sender only sees committed rows)."""
    row = outbound_row(
        customer, message, now=now, reply_to=reply_to, order_id=order_id, technician_id=technician_id
    )
    await row.save()
    return row
