"""A customer with a row in every table that can hold something of theirs, for the erasure and export
tests (and a second customer beside them, whose rows must never be touched)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.db.models import (
    Appointment,
    AppointmentChange,
    AppointmentReminder,
    AppointmentSeat,
    AppointmentStatus,
    AuditEvent,
    AuditKind,
    ChangeSource,
    ConsentAction,
    ConsentChange,
    ConsentScope,
    ConsentSource,
    Conversation,
    ConversationMode,
    ConversationStep,
    ConversationTimer,
    CostEntry,
    Customer,
    CustomerIdentity,
    DeliveryStatus,
    Direction,
    Handoff,
    HandoffNote,
    HandoffStatus,
    IdentityKind,
    Message,
    Order,
    OrderSource,
    OrderStatusChange,
    PaceBucket,
    RelayPointer,
    ReminderStatus,
    SendAdmission,
    Technician,
)
from bot.media.store import MediaStore
from bot.whatsapp.pacing import pair_bucket_key

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
MEDIA_BYTES = b"\x89PNG photo of the cracked screen"


@dataclass
class Seeded:
    customer: Customer
    phone: str
    bsuid: str
    name: str
    text: str
    note: str
    file_url: str
    conversation_id: int
    appointment_id: int
    order_id: int
    message_ids: list[int]


async def seed_customer(
    phone: str, name: str, media: MediaStore, technician: Technician | None = None
) -> Seeded:
    """`phone`'s customer (with a BSUID too), a row of theirs in every table, their texts naming `name`."""
    bsuid = f"US.{phone}77"
    text = f"{name}'s phone fell in the river"
    note = f"{name} wants it back by Friday"
    customer = await Customer.create(wa_id=phone, bsuid=bsuid, profile_name=name, language="en")
    for kind, value in ((IdentityKind.PHONE, phone), (IdentityKind.BSUID, bsuid)):
        await CustomerIdentity.create(
            customer=customer, kind=kind, value=value, first_seen_at=AT, last_seen_at=AT
        )
    file_url = await media.put(MEDIA_BYTES, str(customer.id))
    inbound = await Message.create(
        customer=customer,
        address=phone,
        message_direction=Direction.INBOUND,
        message_type="text",
        message_content=text,
        whatsapp_message_id=f"wamid.{phone}.1",
        delivery_status=DeliveryStatus.HANDLED,
        payload={"text": {"body": text}, "from": phone},
    )
    photo = await Message.create(
        customer=customer,
        address=phone,
        message_direction=Direction.INBOUND,
        message_type="image",
        file_url=file_url,
        file_name="screen.png",
        whatsapp_message_id=f"wamid.{phone}.2",
        delivery_status=DeliveryStatus.HANDLED,
    )
    loose = await Message.create(  # written before the customer was known: by address only
        address=bsuid,
        message_direction=Direction.OUTBOUND,
        message_type="text",
        message_content=f"Hello {name}",
        delivery_status=DeliveryStatus.QUEUED,
    )
    conversation = await Conversation.create(
        customer=customer, flow="main", state="menu", mode=ConversationMode.HUMAN, variables={"name": name}
    )
    await ConversationTimer.create(conversation=conversation, flow="main", state="menu", due_at=AT)
    await ConversationStep.create(conversation_id=conversation.id, flow="main", state="menu", at=AT)
    technician = technician or await Technician.create(name=f"Tech {phone[-4:]}", token_hash=f"h{phone[-4:]}")
    handoff = await Handoff.create(
        conversation=conversation,
        status=HandoffStatus.CLAIMED,
        technician=technician,
        reason="asked",
        requested_at=AT,
    )
    await HandoffNote.create(
        handoff=handoff, conversation=conversation, technician=technician, text=note, created_at=AT
    )
    await AuditEvent.create(
        kind=AuditKind.CLAIM, technician=technician, conversation=conversation, details={}, at=AT
    )
    order = await Order.create(
        order_number=f"R-{phone[-4:]}",  # the phone would stay in the books
        customer_phone=phone,
        customer=customer,
        customer_name=name,
        device_model="Fairphone 4",
        problem="water damage",
        status="received",
        quoted_price=Decimal("89.50"),
    )
    await OrderStatusChange.create(
        order=order, from_status=None, to_status="received", changed_at=AT, source=OrderSource.API
    )
    appointment = await Appointment.create(
        customer=customer,
        customer_phone=phone,
        customer_name=name,
        order=order,
        order_number=order.order_number,
        device_model="Fairphone 4",
        starts_at=AT + timedelta(days=3),
        duration_minutes=30,
        status=AppointmentStatus.BOOKED,
        notes=note,
    )
    await AppointmentSeat.create(
        slot_start=appointment.starts_at, seat=int(phone[-4:]), appointment=appointment
    )
    await AppointmentReminder.create(
        appointment=appointment,
        plan=1,
        offset_minutes=60,
        due_at=AT + timedelta(days=2),
        send_after=AT + timedelta(days=2),
        status=ReminderStatus.PENDING,
    )
    await AppointmentChange.create(
        appointment=appointment, to_status="booked", source=ChangeSource.CHAT, changed_at=AT
    )
    await CostEntry.create(
        message_id=loose.id,
        customer_id=customer.id,
        market="1",
        message_type="text",
        category="service",
        at=AT,
    )
    await SendAdmission.create(message_id=loose.id, customer_id=customer.id, at=AT)
    await ConsentChange.create(
        customer=customer,
        scope=ConsentScope.MARKETING,
        action=ConsentAction.OPT_OUT,
        source=ConsentSource.USER_PREFERENCES,
        at=AT,
    )
    await RelayPointer.create(
        technician=technician, current_customer=customer, offered_customer=customer, listed=[customer.id]
    )
    await PaceBucket.create(key=pair_bucket_key(phone), tat=1.0)
    return Seeded(
        customer=customer,
        phone=phone,
        bsuid=bsuid,
        name=name,
        text=text,
        note=note,
        file_url=file_url,
        conversation_id=conversation.id,
        appointment_id=appointment.id,
        order_id=order.id,
        message_ids=[inbound.id, photo.id, loose.id],
    )
