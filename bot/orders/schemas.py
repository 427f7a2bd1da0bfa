"""The orders API's values at the boundary: what the shop's system sends (and a CSV row holds), and
what it gets back. Statuses are the shop's own (settings.yaml), so they are checked against the names
passed in the validation context: `OrderIn.model_validate(data, context={"statuses": [...]})`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from bot.http import errors as api_errors
from bot.http.errors import FieldError

ORDER_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PHONE_CHARACTERS = re.compile(r"^[\d\s+().-]+$")
PHONE_DIGITS = (7, 15)  # E.164 allows at most 15 digits, country code included


def phone_digits(value: Any) -> str:
    """'+1 (555) 000-1234' → '15550001234': WhatsApp's wa_id is the number in digits only."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("give the phone number as text, e.g. +1 555 000 1234")
    if not PHONE_CHARACTERS.match(value):
        raise ValueError("not a phone number: use digits with the country code, e.g. +1 555 000 1234")
    digits = "".join(ch for ch in value if ch.isdigit())
    low, high = PHONE_DIGITS
    if not low <= len(digits) <= high:
        raise ValueError(
            f"a phone number with its country code has {low} to {high} digits, not {len(digits)}"
        )
    return digits


def _known_status(value: str, info: ValidationInfo) -> str:
    allowed: Sequence[str] | None = (info.context or {}).get("statuses")
    if allowed is not None and value not in allowed:
        raise ValueError(f"unknown status '{value}'; the statuses are: {', '.join(allowed)}")
    return value


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))  # 99.5 is stored, and shown, as 99.50


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _order_number(value: str) -> str:
    if not ORDER_NUMBER.match(value):
        raise ValueError(
            "use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (it goes in URLs)"
        )
    return value


OrderNumber = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_order_number)]
Phone = Annotated[str, BeforeValidator(phone_digits)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
Problem = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
Status = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_known_status)]
Price = Annotated[
    Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2), AfterValidator(_cents)] | None,
    BeforeValidator(_blank_is_none),
]
Technician = Annotated[
    Annotated[str, StringConstraints(strip_whitespace=True, max_length=256)] | None,
    BeforeValidator(_blank_is_none),
]

FIELDS = (
    "order_number",
    "customer_phone",
    "customer_name",
    "device_model",
    "problem",
    "status",
    "quoted_price",
    "technician",
)


class OrderIn(BaseModel):
    """POST /api/orders and one CSV row: the whole order; a new order without a status gets the first
    configured one. Fields left out of an update keep their values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_number: OrderNumber
    customer_phone: Phone
    customer_name: Name
    device_model: Name
    problem: Problem
    status: Status | None = None
    quoted_price: Price = None
    technician: Technician = None


class OrderPatch(BaseModel):
    """PATCH /api/orders/{number}: only the fields given change; quoted_price and technician may be
    cleared with null, the others may not."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_phone: Phone | None = None
    customer_name: Name | None = None
    device_model: Name | None = None
    problem: Problem | None = None
    status: Status | None = None
    quoted_price: Price = None
    technician: Technician = None

    @field_validator("customer_phone", "customer_name", "device_model", "problem", "status")
    @classmethod
    def _not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("may not be null")
        return value


class StatusChangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)

    from_status: str | None
    to_status: str
    changed_at: datetime
    source: str


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: int
    order_number: str
    customer_phone: str
    customer_name: str
    device_model: str
    problem: str
    status: str
    quoted_price: Decimal | None
    technician: str | None
    created_at: datetime
    updated_at: datetime
    history: list[StatusChangeOut] = []
    notification: str | None = None
    """What this request queued for the customer: "text", "template", or nothing."""


def field_errors(exc: ValidationError) -> list[FieldError]:
    """pydantic's errors as (field, reason) pairs a person can act on."""
    return api_errors.field_errors(exc, FIELDS)
