"""Erasure (the right to be forgotten): `bot erase PHONE` and `DELETE /api/customers/{phone}`.

The order of the steps is the point:

1. The customer's data key is destroyed first (crypto-shredding): from that moment everything encrypted
   under it is unreadable everywhere at once, backups included, even if a later step fails.
2. Their rows go in batches, each its own short transaction (bot/privacy/batches.py), so the inbox waits
   for one batch at most: messages with their media files (the relay's rows about them on technicians'
   numbers too, `Message.about_customer_id`), the conversation's steps, notes, handoffs,
   audit events and timer, the conversation; reminders; the consent ledger. Appointments lose their
   personal details (name, phone, notes) and orders theirs (customer name and phone): the shop's calendar
   and books keep the rest, belonging to nobody. Cost entries keep their price, without the customer.
3. Last, in one transaction, the identities and the customer row, and an audit row saying that an
   erasure happened, when and by whom. An erasure stopped half-way is finished by running it again: the
   customer is still found by their phone until the very end.
4. SQLite's write-ahead log is checkpointed and truncated (bot/db/shred.py); with secure_delete the
   main file holds no erased byte either.

The audit row names the customer by their internal id, not by a phone or a hash of it: once the rows are
gone the id identifies nobody, whereas a phone's hash is reversed by trying every number (there are only
about 10^10 of them), so it would still be the phone.

The relay's rows about them (the copies of their messages sent to a technician's WhatsApp, the
technician's replies, the notices naming them) belong to the technician's number, so they are sealed
under the technician's data key, not theirs: destroying the customer's key does not shred them, they are
deleted (a backup keeps them readable until it expires).

`HANDLING` says what happens to each table that points at a customer, and `ABOUT` to each further column
naming a customer on a row that is someone else's; tests/test_export.py fails when a table or such a
column is added that they do not name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from tortoise.expressions import Q
from tortoise.models import Model

from bot.clock import Clock, utc_now
from bot.db.keystore import destroy_data_key
from bot.db.models import (
    Appointment,
    AppointmentChange,
    AppointmentReminder,
    AppointmentSeat,
    AuditEvent,
    AuditKind,
    ConsentChange,
    Conversation,
    ConversationStep,
    ConversationTimer,
    CostEntry,
    Customer,
    CustomerIdentity,
    DataKey,
    Handoff,
    HandoffNote,
    Message,
    Order,
    OrderStatusChange,
    PaceBucket,
    RelayPointer,
    SendAdmission,
)
from bot.db.shred import checkpoint_wal
from bot.db.transactions import atomic
from bot.media.store import MediaStore
from bot.privacy.batches import BATCH, delete_messages, delete_rows, set_in_batches
from bot.privacy.subject import addresses_of
from bot.whatsapp.pacing import pair_bucket_key

log = logging.getLogger(__name__)

ERASED_NAME = ""
"""What an order's customer_name becomes (the column may not be empty of a value, only of a name)."""
ERASED_PHONE = ""
"""What an order's customer_phone becomes: no phone, so no customer has it (bot/orders/owner.py)."""

HANDLING: dict[type[Model], str] = {
    Customer: "deleted, last",
    CustomerIdentity: "deleted, last (the phone and BSUID find the customer until then)",
    Message: "deleted, with their media files",
    Conversation: "deleted",
    ConversationTimer: "deleted",
    ConversationStep: "deleted",
    Handoff: "deleted",
    HandoffNote: "deleted",
    AuditEvent: "the conversation's deleted; one new row records the erasure",
    Appointment: "kept for the calendar without name, phone, notes or customer",
    AppointmentReminder: "deleted (nothing more is sent)",
    AppointmentSeat: "kept with its appointment (a seat of a slot, no person)",
    AppointmentChange: "kept: the appointment's status and time changes, no person",
    Order: "kept for the books without customer name, phone or customer",
    OrderStatusChange: "kept: the order's status history, no person",
    CostEntry: "kept for the bill without the customer",
    ConsentChange: "deleted",
    RelayPointer: "the technicians' pointers at the customer cleared (a `list` keeps its numbering)",
    SendAdmission: "kept: an id, a time and a message id (the send limits' rolling counts), no person",
    PaceBucket: "the recipient's pair bucket deleted (its key is the phone)",
    DataKey: "destroyed first (crypto-shredding: every value of theirs unreadable, backups included)",
}

ABOUT: dict[tuple[type[Model], str], str] = {
    (Message, "about_customer_id"): "the relay's rows about them on technicians' numbers deleted, with "
    "their media files (deletion only: sealed under the technician's data key, not shredded)",
}


@dataclass
class ErasureReport:
    customer_id: int
    at: datetime
    messages: int = 0
    media_files: int = 0
    conversations: int = 0
    relayed: int = 0
    appointments: int = 0
    orders: int = 0
    other_rows: int = 0
    wal_truncated: bool = True

    def as_json(self) -> dict[str, object]:
        return {
            "erased": True,
            "customer_id": self.customer_id,
            "at": self.at.isoformat(),
            "messages": self.messages,
            "media_files": self.media_files,
            "conversations": self.conversations,
            "relayed_to_technicians": self.relayed,
            "appointments_anonymised": self.appointments,
            "orders_anonymised": self.orders,
            "other_rows": self.other_rows,
        }

    def summary(self) -> str:
        return (
            f"erased customer {self.customer_id}: {self.messages} message(s), {self.media_files} media "
            f"file(s), {self.conversations} conversation(s), {self.relayed} relayed to technicians, "
            f"{self.other_rows} other row(s); "
            f"{self.appointments} appointment(s) and {self.orders} order(s) kept without personal details"
        )


async def erase_customer(
    customer: Customer, media: MediaStore, by: str, clock: Clock = utc_now, batch: int = BATCH
) -> ErasureReport:
    """Forget `customer` (see the module's docstring for the steps); `by` is who asked ("admin token",
    "cli:<user>"), kept in the audit row."""
    await destroy_data_key(customer.id)  # FIRST: their ciphertexts are noise from here on, backups too
    report = ErasureReport(customer.id, clock())
    addresses = await addresses_of(customer)
    phones = [address for address in addresses if address.isdigit()]

    mine = Q(customer_id=customer.id) | Q(customer_id=None, address__in=addresses)
    deleted = await delete_messages(Message.filter(mine), media, batch)
    report.messages, report.media_files = deleted.rows, deleted.media_files
    relayed = await delete_messages(Message.filter(about_customer_id=customer.id), media, batch)
    report.relayed, report.media_files = relayed.rows, report.media_files + relayed.media_files

    conversation_ids = list(await Conversation.filter(customer_id=customer.id).values_list("id", flat=True))
    for model in (ConversationStep, HandoffNote, AuditEvent, Handoff, ConversationTimer):
        report.other_rows += await delete_rows(model.filter(conversation_id__in=conversation_ids), batch)
    report.conversations = await delete_rows(Conversation.filter(id__in=conversation_ids), batch)

    appointments = Appointment.filter(
        Q(customer_id=customer.id) | Q(customer_id=None, customer_phone__in=phones)
    )
    appointment_ids = list(await appointments.values_list("id", flat=True))
    report.other_rows += await delete_rows(
        AppointmentReminder.filter(appointment_id__in=appointment_ids), batch
    )
    report.appointments = await set_in_batches(
        appointments, batch, customer_id=None, customer_phone=None, customer_name=None, notes=None
    )
    orders = Order.filter(Q(customer_id=customer.id) | Q(customer_id=None, customer_phone__in=phones))
    report.orders = await set_in_batches(
        orders, batch, customer_id=None, customer_phone=ERASED_PHONE, customer_name=ERASED_NAME
    )
    await set_in_batches(CostEntry.filter(customer_id=customer.id), batch, customer_id=None)
    report.other_rows += await delete_rows(ConsentChange.filter(customer_id=customer.id), batch)
    await _clear_relay_pointers(customer.id)

    async with atomic():
        await PaceBucket.filter(key__in=[pair_bucket_key(address) for address in addresses]).delete()
        report.other_rows += await CustomerIdentity.filter(customer_id=customer.id).delete()
        await Customer.filter(id=customer.id).delete()  # what arrived meanwhile cascades with it
        await AuditEvent.create(
            kind=AuditKind.ERASURE,
            conversation_id=None,
            technician_id=None,
            details={"customer_id": customer.id, "by": by},
            at=report.at,
        )
    report.wal_truncated = await checkpoint_wal()
    log.info("erased customer %s (asked by %s)", customer.id, by)
    return report


async def _clear_relay_pointers(customer_id: int) -> None:
    """A technician's relay pointers stop naming the customer. The ids their last `list` numbered stay
    as they are: `claim N` keeps its numbering and finds no chat at the erased one."""
    async with atomic():
        await RelayPointer.filter(current_customer_id=customer_id).update(current_customer_id=None)
        await RelayPointer.filter(offered_customer_id=customer_id).update(offered_customer_id=None)
