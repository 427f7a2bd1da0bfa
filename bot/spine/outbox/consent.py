"""The consent check at the outbox's claim: a template the shop starts never goes to a customer who said no.

- Opted out (STOP, `Customer.opted_out_at`): no template the shop starts, i.e. one sent while their
  24-hour window is closed, and no marketing template at all.
- Marketing stopped (Meta's user_preferences webhook or error 131050, `marketing_opted_out_at`): no
  marketing template (the category in templates/).

Replies inside the window (free-form, or a template a technician picks in an open chat) still go. The
check runs at the claim, before the send limits count the row (bot/costs/guard.py); a refused row fails
with the reason on it, never sent. Notices the shop writes while the customer is out are refused when
written (queue.py), this catches those queued before the opt-out and every other template.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.db.models import Message
from bot.spine.outbox.queue import OPTED_OUT_TITLE
from bot.spine.outbox.window import window_open
from bot.whatsapp.errors import CODE_MARKETING_OPTED_OUT, CODE_OPTED_OUT

MARKETING = "marketing"
MARKETING_OPTED_OUT_TITLE = (
    "not sent: a marketing template, and the customer stopped marketing messages (in WhatsApp, or "
    "error 131050); they resume them in WhatsApp"
)
CategoryOf = Callable[[str], str | None]
"""A template's category in templates/ by name (None: unknown)."""


@dataclass(frozen=True, slots=True)
class CustomerState:
    """What the claim reads of each customer it sends to."""

    last_inbound_at: datetime | None
    opted_out_at: datetime | None = None
    marketing_opted_out_at: datetime | None = None


def refusal(
    row: Message, customer: CustomerState, now: datetime, category_of: CategoryOf | None
) -> tuple[int, str] | None:
    """(error code, title) when `row` must not go to this customer; None: it may."""
    if customer.opted_out_at is None and customer.marketing_opted_out_at is None:
        return None
    name = row.payload.get("name") if row.message_type == "template" and row.payload else None
    if not isinstance(name, str):
        return None  # not a template: a reply (a notice to an opted-out customer is refused when written)
    return template_refusal(name, customer, now, category_of)


def template_refusal(
    name: str, customer: CustomerState, now: datetime, category_of: CategoryOf | None
) -> tuple[int, str] | None:
    """`refusal` for the template `name` (the technician API asks before it queues one)."""
    marketing = category_of is not None and category_of(name) == MARKETING
    started = not window_open(customer.last_inbound_at, now)
    if customer.opted_out_at is not None and (started or marketing):
        return CODE_OPTED_OUT, OPTED_OUT_TITLE
    if customer.marketing_opted_out_at is not None and marketing:
        return CODE_MARKETING_OPTED_OUT, MARKETING_OPTED_OUT_TITLE
    return None
