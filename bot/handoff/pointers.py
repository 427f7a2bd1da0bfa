"""Where each technician's relay commands point, in the database (RelayPointer, one row a technician):
the chat their plain replies go to, the waiting chats their last `list` numbered, the chat last
announced to them. Kept there, not in memory, so that a restart (or another process) reads what the
technician was last told; chats are their customers' ids. Every call runs inside the caller's
transaction (the inbox's batch), so a pointer moves with the message that moved it, or not at all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.clock import utc_now
from bot.db.models import RelayPointer

UNSET: object = object()


@dataclass(frozen=True)
class Pointer:
    """What one technician's commands refer to (customer ids)."""

    current: int | None = None
    """The chat their plain replies go to; None: their latest claimed chat."""
    listed: tuple[int, ...] | None = None
    """The waiting chats their last `list` numbered, from 1; None: they have not listed yet."""
    offered: int | None = None
    """The chat last announced to them (what a late `claim` means)."""


class RelayPointers:
    async def get(self, technician_id: int) -> Pointer:
        row = await RelayPointer.get_or_none(technician_id=technician_id)
        if row is None:
            return Pointer()
        listed = tuple(int(n) for n in row.listed) if row.listed is not None else None
        return Pointer(row.current_customer_id, listed, row.offered_customer_id)

    async def point(
        self,
        technician_id: int,
        *,
        current: int | object | None = UNSET,
        listed: list[int] | object = UNSET,
        offered: int | object | None = UNSET,
    ) -> None:
        """Change what is given (a customer id, None for none); the rest stays."""
        changes: dict[str, Any] = {}
        if current is not UNSET:
            changes["current_customer_id"] = current
        if listed is not UNSET:
            changes["listed"] = listed
        if offered is not UNSET:
            changes["offered_customer_id"] = offered
        if not changes:
            return
        changes["updated_at"] = utc_now()  # a queryset update leaves auto_now alone
        updated = await RelayPointer.filter(technician_id=technician_id).update(**changes)
        if not updated:
            await RelayPointer.create(technician_id=technician_id, **changes)
