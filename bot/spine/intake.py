"""Group commit for the webhook: many concurrent POSTs share one transaction.

Each webhook request hands its parsed notification to `IntakeWriter.write` and waits; one writer task
takes everything that queued up meanwhile and commits it in a single transaction (inbound rows
deduplicated on their wamid, each with its customer: bot/identity resolves the senders in the same
transaction; status updates applied). Only then do the requests answer 200. Under load
this turns one fsync per message into one per batch, and nothing is acknowledged before it is on disk.

A batch whose commit fails is committed again request by request, so one bad notification fails alone
(its request answers 500, Meta retries it) and the others answer 200. Parsing limits every field to its
column (bot/whatsapp/notifications.py), so this is for what parsing could not foresee, and a database that is
down fails every request as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise import timezone

from bot.clock import Clock, utc_now
from bot.costs.service import new_messaging_limit
from bot.db.models import DeliveryStatus, Direction, Message
from bot.db.transactions import atomic
from bot.db.turns import first_in_line
from bot.db.writes import insert_rows
from bot.identity import resolve_senders
from bot.loops import finish
from bot.monitoring import metrics
from bot.privacy.preferences import known, record_preferences
from bot.spine.statuses import StatusChange, record_statuses
from bot.whatsapp.notifications import InboundItem, Notification, PreferenceItem

log = logging.getLogger(__name__)

MAX_BATCH_MESSAGES = 2000


class NotStored(Exception):
    """The notification's commit failed: the webhook answers 500, and Meta delivers it again."""


@dataclass
class _Pending:
    inbound: list[list[Any]]
    """The message-log rows to insert, as `inbound_values` (their customer is set where committed)."""
    statuses: list[StatusChange]
    items: list[InboundItem] = field(default_factory=list)
    """What `inbound` was made from (bot/identity reads the senders from it)."""
    limits: list[int | None] = field(default_factory=list)
    """Meta's messaging limit, as business_capability_update webhooks report it (None: unlimited)."""
    preferences: list[PreferenceItem] = field(default_factory=list)
    """Marketing stops and resumes (user_preferences webhooks): the consent ledger's."""
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


INBOUND_COLUMNS = (
    "customer_id",
    "address",
    "message_direction",
    "message_type",
    "message_content",
    "file_name",
    "whatsapp_message_id",
    "delivery_status",
    "payload",
    "attempts",
    "received_at",
    "sent_at",
    "created_at",
    "updated_at",
)
"""What an inbound row is written with (the other columns are empty until it is handled)."""
_CUSTOMER = INBOUND_COLUMNS.index("customer_id")


def inbound_values(item: InboundItem, received_at: datetime) -> list[Any]:
    """The message-log row for one inbound message, before the engine has seen it, as the values of
    INBOUND_COLUMNS: the webhook's hot path builds no model per row (its customer is set where it is
    committed)."""
    message = item.message
    payload: dict[str, object] = {"message": item.raw, "profile_name": item.profile_name}
    if item.sender is not None and item.sender.username:
        payload["username"] = item.sender.username
    return [
        None,
        message.address,
        Direction.INBOUND,
        message.kind,
        message.text_content,
        message.file_name,
        message.id,
        DeliveryStatus.PENDING,
        payload,
        0,
        received_at,
        message.timestamp,
        *(timezone.now(),) * 2,  # created_at and updated_at, as save() stamps them
    ]


def inbound_row(item: InboundItem, received_at: datetime) -> Message:
    """`inbound_values` as a model (tools and tests save it)."""
    values = dict(zip(INBOUND_COLUMNS, inbound_values(item, received_at), strict=True))
    for stamp in ("created_at", "updated_at"):
        del values[stamp]  # save() stamps them
    return Message(**values)


def status_changes(notification: Notification) -> list[StatusChange]:
    changes = []
    for update in notification.status_updates():
        error = update.errors[0] if update.errors else None
        changes.append(
            StatusChange(
                wamid=update.id,
                status=update.status,
                timestamp=update.timestamp,
                pricing=update.pricing.column() if update.pricing else None,
                error_code=error.code if error else None,
                error_title=error.summary if error else None,
                phone=update.recipient_id or update.recipient_user_id,
            )
        )
    return changes


class IntakeWriter:
    """Commits notifications in groups; `on_committed` wakes the inbox worker."""

    def __init__(
        self,
        on_committed: Callable[[], None],
        on_statuses: Callable[[list[StatusChange]], None] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._clock = clock
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()  # None: stop
        self._on_committed = on_committed
        self._on_statuses = on_statuses
        self._task: asyncio.Task[None] | None = None

    async def write(self, notification: Notification) -> int:
        """Store what the notification carries; returns when it is committed (NotStored if it was not)."""
        now = self._clock()
        items = notification.inbound_messages()
        inbound = [inbound_values(item, now) for item in items]
        statuses = status_changes(notification)
        limits = notification.messaging_limits()
        preferences = known(notification.user_preferences())
        if not inbound and not statuses and not limits and not preferences:
            return 0
        pending = _Pending(inbound, statuses, items, limits, preferences)
        self._queue.put_nowait(pending)
        await asyncio.shield(pending.done)
        return len(inbound)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="intake-writer")

    async def stop(self) -> None:
        """Commit what is already queued (never cancel a commit: see bot/loops.py), then end."""
        self._queue.put_nowait(None)
        await finish(self._task)

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            size = len(first.inbound)
            while not self._queue.empty() and size < MAX_BATCH_MESSAGES:
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                size += len(item.inbound)
            try:
                await self._commit(batch)
            except Exception as exc:
                if len(batch) == 1:
                    self._failed(batch[0], exc)
                    continue
                log.warning("group commit of %d requests failed (%r): each on its own", len(batch), exc)
                batch = await self._commit_each(batch)
            for pending in batch:
                if not pending.done.done():
                    pending.done.set_result(None)
            if any(pending.inbound for pending in batch):
                self._on_committed()
            if self._on_statuses:
                changes = [change for pending in batch for change in pending.statuses]
                if changes:
                    self._on_statuses(changes)

    async def _commit_each(self, batch: list[_Pending]) -> list[_Pending]:
        """Commit each request of a failed batch in its own transaction; returns those committed."""
        committed = []
        for pending in batch:
            try:
                await self._commit([pending])
            except Exception as exc:
                self._failed(pending, exc)
            else:
                committed.append(pending)
        return committed

    @staticmethod
    def _failed(pending: _Pending, exc: Exception) -> None:
        wamids = [item.message.id for item in pending.items] + [s.wamid for s in pending.statuses]
        log.error(
            "webhook request not stored (%d message(s), %d status(es): %s): %r",
            len(pending.inbound),
            len(pending.statuses),
            ", ".join(str(wamid) for wamid in wamids[:5]) + (" …" if len(wamids) > 5 else ""),
            exc,
            exc_info=exc,
        )
        if not pending.done.done():
            pending.done.set_exception(NotStored(repr(exc)))

    async def _commit(self, batch: list[_Pending]) -> None:
        inbound = [row for pending in batch for row in pending.inbound]
        items = [item for pending in batch for item in pending.items]
        statuses = [change for pending in batch for change in pending.statuses]
        limits = [limit for pending in batch for limit in pending.limits]
        preferences = [item for pending in batch for item in pending.preferences]
        with first_in_line():  # someone outside waits for this commit's answer (bot/db/turns.py)
            async with atomic():
                if inbound:
                    for row, customer_id in zip(
                        inbound, await resolve_senders(items, self._clock()), strict=True
                    ):
                        row[_CUSTOMER] = customer_id
                    await insert_rows(
                        Message,
                        INBOUND_COLUMNS,
                        inbound,
                        ignore_conflicts=True,
                        last=not (statuses or limits or preferences),  # the usual webhook: messages only
                    )
                moved = await record_statuses(statuses)
                if limits:
                    await new_messaging_limit(limits[-1], self._clock())
                if preferences:
                    await record_preferences(preferences, self._clock())
        metrics.outbound(moved)
