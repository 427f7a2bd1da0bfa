"""Delivery statuses: applied monotonically, and kept when they arrive before the send is recorded.

Meta delivers status webhooks concurrently and in no guaranteed order, sometimes before the outbox has
stored the wamid the send returned. A status never downgrades a message (read implies delivered), and
one for an unknown wamid waits in `early_status` until the outbox records that wamid. A failure with
error 131050 (the user stopped marketing messages) records their marketing opt-out (bot/privacy).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.costs.ledger import record_costs
from bot.db.models import DeliveryStatus, Direction, EarlyStatus, Message
from bot.db.writes import update_rows
from bot.privacy.consent import marketing_refused
from bot.whatsapp.errors import MarketingOptOut

_RANK = {
    DeliveryStatus.PENDING: 0,
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DELIVERED: 2,
    DeliveryStatus.READ: 3,
}
STATUS_FIELDS = (
    "delivery_status",
    "sent_at",
    "delivered_at",
    "read_at",
    "failed_at",
    "error_code",
    "error_title",
    "pricing",
)


@dataclass(frozen=True)
class StatusChange:
    """One status webhook entry, reduced to what the message log keeps."""

    wamid: str
    status: str
    timestamp: datetime
    pricing: dict[str, Any] | None = None
    error_code: int | None = None
    error_title: str | None = None
    phone: str | None = None
    """The recipient, when Meta names one (shown live to the technician who has the chat)."""


def apply_status(message: Message, change: StatusChange) -> bool:
    """Move one message forward by one status; False when the status adds nothing."""
    changed = False
    if change.pricing and message.pricing != change.pricing:
        message.pricing = change.pricing
        changed = True
    current = DeliveryStatus(message.delivery_status)
    if change.status == "failed":
        if current in (DeliveryStatus.DELIVERED, DeliveryStatus.READ) or current not in _RANK:
            return changed
        message.delivery_status = DeliveryStatus.FAILED
        message.failed_at = change.timestamp
        message.error_code = change.error_code
        message.error_title = change.error_title
        return True
    try:
        new = DeliveryStatus(change.status)
    except ValueError:  # "played" and whatever Meta adds next: nothing to move
        return changed
    if new not in _RANK or current not in _RANK:  # failed, or an inbound row the bot has handled
        return changed
    if new is DeliveryStatus.SENT and message.sent_at is None:
        message.sent_at = change.timestamp
        changed = True
    if new in (DeliveryStatus.DELIVERED, DeliveryStatus.READ) and message.delivered_at is None:
        message.delivered_at = change.timestamp  # read implies delivered: Meta may skip "delivered"
        changed = True
    if new is DeliveryStatus.READ and message.read_at is None:
        message.read_at = change.timestamp
        changed = True
    if _RANK[new] > _RANK[current]:
        message.delivery_status = new
        changed = True
    return changed


async def record_statuses(changes: Sequence[StatusChange]) -> list[tuple[str, str]]:
    """Apply status webhooks to the outbound rows they name; park the rest. Runs inside the caller's
    transaction. Returns the (message type, new status) of each status a row moved to (/metrics)."""
    if not changes:
        return []
    wamids = {change.wamid for change in changes}
    rows = {row.whatsapp_message_id: row for row in await Message.filter(whatsapp_message_id__in=wamids)}
    changed: dict[int, Message] = {}
    early: list[EarlyStatus] = []
    moved: list[tuple[str, str]] = []
    priced: list[tuple[Message, dict[str, Any], datetime]] = []
    stopped: list[tuple[int, datetime, str]] = []
    for change in changes:
        row = rows.get(change.wamid)
        if row is None:
            early.append(_early(change))
            continue
        if change.error_code in MarketingOptOut.codes and row.customer_id is not None:
            stopped.append((row.customer_id, change.timestamp, change.wamid))
        if change.pricing and row.message_direction == Direction.OUTBOUND:
            priced.append((row, change.pricing, change.timestamp))
        before = row.delivery_status
        if apply_status(row, change):
            changed[row.id] = row
            if row.delivery_status != before:
                moved.append((row.message_type, str(row.delivery_status)))
    if changed:
        await update_rows(Message, list(changed.values()), [*STATUS_FIELDS, "updated_at"])
    if early:
        await EarlyStatus.bulk_create(early, ignore_conflicts=True)
    await record_costs(priced)
    await marketing_refused(stopped)
    return moved


async def claim_early_statuses(messages: Iterable[Message]) -> list[Message]:
    """Apply parked statuses to freshly sent messages (in memory) and delete them; returns the changed."""
    by_wamid = {m.whatsapp_message_id: m for m in messages if m.whatsapp_message_id}
    if not by_wamid:
        return []
    parked = await EarlyStatus.filter(whatsapp_message_id__in=list(by_wamid)).order_by("timestamp", "id")
    if not parked:
        return []
    changed: dict[int, Message] = {}
    priced: list[tuple[Message, dict[str, Any], datetime]] = []
    stopped: list[tuple[int, datetime, str]] = []
    for status in parked:
        message = by_wamid[status.whatsapp_message_id]
        if status.error_code in MarketingOptOut.codes and message.customer_id is not None:
            stopped.append((message.customer_id, status.timestamp, status.whatsapp_message_id))
        if status.pricing:
            priced.append((message, status.pricing, status.timestamp))
        change = StatusChange(
            wamid=status.whatsapp_message_id,
            status=status.status,
            timestamp=status.timestamp,
            pricing=status.pricing,
            error_code=status.error_code,
            error_title=status.error_title,
        )
        if apply_status(message, change):
            changed[message.id] = message
    await EarlyStatus.filter(id__in=[s.id for s in parked]).delete()
    await record_costs(priced)
    await marketing_refused(stopped)
    return list(changed.values())


def _early(change: StatusChange) -> EarlyStatus:
    return EarlyStatus(
        whatsapp_message_id=change.wamid,
        status=change.status,
        timestamp=change.timestamp,
        pricing=change.pricing,
        error_code=change.error_code,
        error_title=change.error_title,
    )
