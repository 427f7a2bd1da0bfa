"""The rows a sender holds, and their leases: kept alive for as long as the rows are in its hands.

A claim gives its rows a lease (`next_attempt_at` moves `lease` into the future), so rows a dead sender
had claimed come back by themselves. A live sender must never let a lease run out on a row it still
holds, waiting behind slow sends or with its result in memory while the database refuses the write,
or another claim sends it again. So a held row's lease is renewed once half of it is spent: one UPDATE
for every such row, and none at all while sends and writes take the milliseconds they normally do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from bot.db.models import DeliveryStatus, Message


class Leases:
    def __init__(self, lease: timedelta) -> None:
        self.lease = lease
        self._ends: dict[int, datetime] = {}
        """Row id -> when its lease ends, in the order they were taken (so the first ends first)."""

    def __len__(self) -> int:
        return len(self._ends)

    def hold(self, row_ids: Iterable[int], now: datetime) -> None:
        """Rows just claimed with a lease until now + lease."""
        until = now + self.lease
        for row_id in row_ids:
            self._ends[row_id] = until

    def release(self, row_ids: Iterable[int]) -> None:
        """Rows whose outcome is written (or that are given back as they are)."""
        for row_id in row_ids:
            self._ends.pop(row_id, None)

    def due(self, now: datetime) -> list[int]:
        """Held rows whose lease has half run out."""
        soon = now + self.lease / 2
        if not self._ends or next(iter(self._ends.values())) > soon:
            return []
        return [row_id for row_id, until in self._ends.items() if until <= soon]

    async def renew(self, now: datetime) -> int:
        """Extend the leases that are due; returns how many. Call with the sender's writes serialised."""
        due = self.due(now)
        if not due:
            return 0
        await Message.filter(id__in=due, delivery_status=DeliveryStatus.QUEUED).update(
            next_attempt_at=now + self.lease
        )
        still_held = [row_id for row_id in due if row_id in self._ends]  # none given back meanwhile
        self.release(still_held)
        self.hold(still_held, now)
        return len(due)
