"""The handoff guards: nobody claims a waiting chat → the customer gets an apology and the offer to leave
a message (once per handoff); a claimed chat silent both ways too long → back to the bot, with a note
to the technician. Runs inside `bot serve` every `handoff.check_seconds`; `run_once()` with a clock in
tests. Each change is one transaction with a conditional update, so two processes never do it twice;
its event goes out after that transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.clock import Clock, utc_now
from bot.db.models import (
    AuditEvent,
    AuditKind,
    Conversation,
    Customer,
    Direction,
    Handoff,
    HandoffNote,
    HandoffStatus,
    Message,
)
from bot.db.transactions import atomic
from bot.engine.content import ContentSource
from bot.handoff.events import EventHub
from bot.handoff.service import HandoffDesk, customer_of, queue_event
from bot.handoff.texts import IDLE_NOTE
from bot.loops import Loop
from bot.settings import Settings
from bot.spine.outbox import enqueue
from bot.whatsapp.outbound import Text

log = logging.getLogger(__name__)


class HandoffGuards:
    def __init__(
        self,
        settings: Settings,
        content: ContentSource,
        events: EventHub | None = None,
        clock: Clock = utc_now,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        """`content`: where the apology's words are (the served texts)."""
        self.rules = settings.handoff
        self._default_language = settings.shop.default_language
        self._content = content
        self.events = events if events is not None else EventHub()
        self._clock = clock
        self._on_queued = on_queued
        self._loop = Loop("handoff-guards", self.run_once, self.rules.check_seconds)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Finish the round in hand (never cancel mid-transaction: see bot/loops.py), then end."""
        await self._loop.stop()

    async def run_once(self) -> tuple[int, int]:
        """(apologies queued, idle chats given back) as of the clock."""
        now = self._clock()
        apologized = await self._unclaimed(now)
        released = await self._idle(now)
        if apologized:
            self._on_queued()
        return apologized, released

    async def _unclaimed(self, now: datetime) -> int:
        limit = now - timedelta(minutes=self.rules.unclaimed_minutes)
        done = 0
        due = await Handoff.filter(status=HandoffStatus.WAITING, apologized_at=None, requested_at__lte=limit)
        for handoff in due:
            async with atomic():
                marked = await Handoff.filter(
                    id=handoff.id, status=HandoffStatus.WAITING, apologized_at=None
                ).update(apologized_at=now)
                if not marked:
                    continue
                customer = await customer_of(handoff)
                if customer is None:
                    continue
                text = self._content().texts.say(
                    "handoff.unclaimed", customer.language, self._default_language
                )
                await enqueue(customer, Text(body=text), now=now)
                await AuditEvent.create(
                    kind=AuditKind.GUARD_UNCLAIMED,
                    conversation_id=handoff.conversation_id,
                    details={"handoff_id": handoff.id, "minutes": self.rules.unclaimed_minutes},
                    at=now,
                )
                self.events.publish(queue_event("apologized", handoff, customer))
            done += 1
        return done

    async def _idle(self, now: datetime) -> int:
        limit = now - timedelta(minutes=self.rules.idle_minutes)
        done = 0
        for handoff in await Handoff.filter(status=HandoffStatus.CLAIMED).prefetch_related("conversation"):
            latest = await (
                Message.filter(
                    customer_id=handoff.conversation.customer_id, message_direction=Direction.INBOUND
                )
                .order_by("-id")
                .limit(1)
                .values_list("received_at", flat=True)
            )
            last_inbound: datetime | None = latest[0] if latest else None  # type: ignore[assignment]
            activity = max(
                (t for t in (handoff.last_activity_at, handoff.claimed_at, last_inbound) if t is not None),
                default=handoff.requested_at,
            )
            if activity > limit:
                continue
            async with atomic():
                conversation = await Conversation.get_or_none(id=handoff.conversation_id)
                still = await Handoff.filter(
                    id=handoff.id, status=HandoffStatus.CLAIMED, technician_id=handoff.technician_id
                ).exists()
                if conversation is None or not still:
                    continue
                await HandoffDesk._give_back(conversation, handoff, now)
                await HandoffNote.create(
                    handoff_id=handoff.id,
                    conversation_id=handoff.conversation_id,
                    customer_id=conversation.customer_id,
                    technician_id=handoff.technician_id,
                    text=IDLE_NOTE.format(minutes=self.rules.idle_minutes),
                    created_at=now,
                )
                await AuditEvent.create(
                    kind=AuditKind.GUARD_IDLE,
                    technician_id=handoff.technician_id,
                    conversation_id=handoff.conversation_id,
                    details={"handoff_id": handoff.id, "minutes": self.rules.idle_minutes},
                    at=now,
                )
                customer = await Customer.get_or_none(id=conversation.customer_id)
                self.events.publish(queue_event("released", handoff, customer, by="guard_idle"))
            done += 1
        return done
