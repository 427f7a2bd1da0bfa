"""The appointments API's values at the boundary: what the shop's system sends and what it gets back.

Phone numbers, names and order numbers are checked as the orders API checks them; `starts_at` must be
ISO 8601 with its offset (2026-12-02T14:30:00-05:00), so a time is never read in the wrong zone.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationError,
    field_validator,
)

from bot import api_errors
from bot.api_errors import FieldError
from bot.db.models import AppointmentStatus
from bot.orders.schemas import Name, OrderNumber, Phone

FIELDS = (
    "customer_phone",
    "customer_name",
    "starts_at",
    "duration_minutes",
    "device_model",
    "order_number",
    "status",
    "notes",
)
PATCH_FIELDS = ("status", "starts_at", "notes", "notify")


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


Notes = Annotated[
    Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)] | None,
    BeforeValidator(_blank_is_none),
]
OptionalName = Annotated[Name | None, BeforeValidator(_blank_is_none)]
OptionalOrder = Annotated[OrderNumber | None, BeforeValidator(_blank_is_none)]


class AppointmentIn(BaseModel):
    """POST /api/appointments: a new appointment at the start of one of the shop's slots."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_phone: Phone
    customer_name: OptionalName = None
    starts_at: AwareDatetime
    duration_minutes: int | None = Field(default=None, ge=5, le=24 * 60)
    """Default: appointments.slot_minutes."""
    device_model: OptionalName = None
    order_number: OptionalOrder = None
    status: AppointmentStatus = AppointmentStatus.BOOKED
    notes: Notes = None

    @field_validator("status")
    @classmethod
    def _starts_active(cls, value: AppointmentStatus) -> AppointmentStatus:
        if value not in (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED):
            raise ValueError("a new appointment is booked or confirmed")
        return value


class AppointmentPatch(BaseModel):
    """PATCH /api/appointments/{id}: the status, the time (a move) and/or the notes (null clears).
    A move or a cancellation tells the customer unless `notify` is false."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: AppointmentStatus | None = None
    starts_at: AwareDatetime | None = None
    notes: Notes = None
    notify: StrictBool = True

    @field_validator("status", "starts_at")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value


class AppointmentQuery(BaseModel):
    """GET /api/appointments?phone=&from=&to=: a date is the shop's whole day; `to` is exclusive."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    phone: Phone | None = None
    start: AwareDatetime | date | None = Field(default=None, alias="from")
    end: AwareDatetime | date | None = Field(default=None, alias="to")


class ReminderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)

    offset_minutes: int
    due_at: datetime
    status: str
    reason: str | None
    sent_at: datetime | None


class ChangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)

    from_status: str | None
    to_status: str
    from_starts_at: datetime | None
    to_starts_at: datetime | None
    source: str
    changed_at: datetime


class AppointmentOut(BaseModel):
    """Times in the shop's zone with their offset; reminders of the current plan and the whole history."""

    model_config = ConfigDict(frozen=True)

    id: int
    customer_phone: str
    customer_name: str | None
    starts_at: datetime
    ends_at: datetime
    duration_minutes: int
    device_model: str | None
    order_number: str | None
    status: str
    notes: str | None
    created_at: datetime
    updated_at: datetime
    reminders: list[ReminderOut] = []
    history: list[ChangeOut] = []
    notification: str | None = None
    """PATCH: the message queued for the customer about this change ("text", "template"), or null."""


def field_errors(exc: ValidationError, fields: tuple[str, ...]) -> list[FieldError]:
    """pydantic's errors as (field, reason) pairs a person can act on (the orders API's style)."""
    return api_errors.field_errors(
        exc, fields, {"timezone_aware": "give the time with its offset, e.g. 2026-12-02T14:30:00-05:00"}
    )
