"""The right of access: everything held about one customer, as JSON, decrypted (`bot export PHONE`,
`GET /api/customers/{phone}/export`).

One section per table, each row with every column the table has (read through the ORM, so encrypted
columns come out as plaintext, and a column added later is exported without anyone remembering to),
plus the rows about them on someone else's (`ABOUT`: the relay's copies of their chat on a
technician's number, `relayed_to_technicians`), the consent ledger as bot/privacy/consent.py tells it,
and the customer's stored media files, decrypted, in base64. `SECTIONS` names the table of each
section, `ABOUT` the section of each further column naming a customer, and `EXCLUDED` the tables that
point at a customer but are not theirs to see, each with its reason; tests/test_export.py fails when a
table or such a column is in none.
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tortoise.expressions import Q
from tortoise.models import Model

from bot import crypto
from bot.clock import Clock, utc_now
from bot.db.models import (
    Appointment,
    AppointmentChange,
    AppointmentReminder,
    AppointmentSeat,
    AuditEvent,
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
    RelayPointer,
    SendAdmission,
)
from bot.media.store import MediaStore, is_stored, media_owner
from bot.privacy.consent import consent_history
from bot.privacy.subject import addresses_of

FORMAT = 1
"""The export's layout version, in the document: a change of layout changes it."""

SECTIONS: dict[type[Model], str] = {
    Customer: "customer",
    CustomerIdentity: "identities",
    Message: "messages",
    Conversation: "conversations",
    ConversationTimer: "conversation_timers",
    ConversationStep: "conversation_steps",
    Handoff: "handoffs",
    HandoffNote: "handoff_notes",
    AuditEvent: "audit_events",
    Appointment: "appointments",
    AppointmentReminder: "appointment_reminders",
    AppointmentChange: "appointment_changes",
    Order: "orders",
    OrderStatusChange: "order_status_changes",
    ConsentChange: "consent_history",
    CostEntry: "cost_entries",
    SendAdmission: "send_admissions",
}

ABOUT: dict[tuple[type[Model], str], str] = {
    (Message, "about_customer_id"): "relayed_to_technicians",
}
"""Columns that name a customer on a row that is not theirs (the relay's rows on a technician's number:
their messages as the technician got them, the technician's replies, notices naming them)."""

EXCLUDED: dict[type[Model], str] = {
    AppointmentSeat: "which seat of a slot an appointment holds: the shop's capacity bookkeeping; the "
    "appointment's time is in `appointments`",
    RelayPointer: "a technician's own working state (which chat their replies go to), naming the "
    "customer only by id",
    DataKey: "the key their data is encrypted with, wrapped by the shop's master key: what makes the "
    "export readable, not data about them",
}


def as_json(value: Any) -> Any:
    """A column's value as JSON: times in ISO 8601, amounts as decimal text, enums as their value."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def row_json(row: Model) -> dict[str, Any]:
    """Every column of a row (a foreign key as its id), by field name."""
    return {name: as_json(getattr(row, name)) for name in row._meta.fields_db_projection}


def rows_json(rows: Iterable[Model]) -> list[dict[str, Any]]:
    return [row_json(row) for row in rows]


async def export_customer(customer: Customer, media: MediaStore, clock: Clock = utc_now) -> dict[str, Any]:
    """Everything held about `customer`, section by section (see SECTIONS)."""
    identities = await CustomerIdentity.filter(customer_id=customer.id).order_by("id")
    addresses = await addresses_of(customer)
    phones = [address for address in addresses if address.isdigit()]
    messages = await Message.filter(
        Q(customer_id=customer.id) | Q(customer_id=None, address__in=addresses)
    ).order_by("id")
    relayed = await Message.filter(about_customer_id=customer.id).order_by("id")
    conversations = await Conversation.filter(customer_id=customer.id).order_by("id")
    conversation_ids = [row.id for row in conversations]
    by_conversation = {"conversation_id__in": conversation_ids}
    appointments = await Appointment.filter(
        Q(customer_id=customer.id) | Q(customer_id=None, customer_phone__in=phones)
    ).order_by("id")
    by_appointment = {"appointment_id__in": [row.id for row in appointments]}
    orders = await Order.filter(
        Q(customer_id=customer.id) | Q(customer_id=None, customer_phone__in=phones)
    ).order_by("id")
    document: dict[str, Any] = {
        "format": FORMAT,
        "exported_at": clock().isoformat(),
        "customer": row_json(customer),
        "identities": rows_json(identities),
        "messages": rows_json(messages),
        "relayed_to_technicians": rows_json(relayed),
        "media_files": await _media_files([*messages, *relayed], media),
        "conversations": rows_json(conversations),
        "conversation_timers": rows_json(await ConversationTimer.filter(**by_conversation).order_by("id")),
        "conversation_steps": rows_json(await ConversationStep.filter(**by_conversation).order_by("id")),
        "handoffs": rows_json(await Handoff.filter(**by_conversation).order_by("id")),
        "handoff_notes": rows_json(await HandoffNote.filter(**by_conversation).order_by("id")),
        "audit_events": rows_json(await AuditEvent.filter(**by_conversation).order_by("id")),
        "appointments": rows_json(appointments),
        "appointment_reminders": rows_json(await AppointmentReminder.filter(**by_appointment).order_by("id")),
        "appointment_changes": rows_json(await AppointmentChange.filter(**by_appointment).order_by("id")),
        "orders": rows_json(orders),
        "order_status_changes": rows_json(
            await OrderStatusChange.filter(order_id__in=[row.id for row in orders]).order_by("id")
        ),
        "consent_history": await consent_history(customer.id),
        "cost_entries": rows_json(await CostEntry.filter(customer_id=customer.id).order_by("id")),
        "send_admissions": rows_json(await SendAdmission.filter(customer_id=customer.id).order_by("id")),
    }
    return document


async def _media_files(messages: Iterable[Message], media: MediaStore) -> list[dict[str, Any]]:
    """The stored files of these messages, decrypted, in base64; a file gone or unreadable says so."""
    files: list[dict[str, Any]] = []
    for message in messages:
        if not is_stored(message.file_url):
            continue
        entry: dict[str, Any] = {"message_id": message.id, "file_name": message.file_name}
        try:
            data = await media.get(str(message.file_url), media_owner(message.customer_id, message.address))
        except FileNotFoundError:
            entry["error"] = "the file is gone"
        except crypto.CryptoError as exc:
            entry["error"] = f"unreadable: {exc}"
        else:
            entry["size"] = len(data)
            entry["base64"] = base64.b64encode(data).decode()
        files.append(entry)
    return files
