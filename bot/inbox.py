"""The durable inbox: stored inbound messages → the engine → conversation state and outbox rows.

The webhook only stores; this worker does the rest, after the 200. It takes unhandled inbound rows in
batches, handles each conversation's messages one at a time and in order, and commits, in one
transaction per batch, every conversation's new state, the inbound rows marked handled, and the replies
as queued outbox rows. A crash anywhere leaves either nothing or all of it, and a restarted worker
simply finds the same pending rows again: every acknowledged message is handled exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tortoise.transactions import in_transaction

from bot.clock import Clock, utc_now
from bot.db.claims import Claims
from bot.db.models import (
    Conversation,
    ConversationMode,
    ConversationTimer,
    Customer,
    DeliveryStatus,
    Direction,
    Message,
)
from bot.engine import Conversation as ConversationState
from bot.engine import Customer as CustomerInfo
from bot.engine import Engine, Event, Outcome
from bot.engine.events import TIMEOUT
from bot.engine.texts import TextCatalog
from bot.loops import Loop
from bot.whatsapp.outbound import OutboundMessage, Text
from bot.whatsapp.types import InboundMessage

if TYPE_CHECKING:
    from bot.db.models import Technician
    from bot.handoff.relay import Relay

log = logging.getLogger(__name__)

BATCH_SIZE = 200
POLL_SECONDS = 1.0
TIMER_CHECK_SECONDS = 1.0


def apology(texts: TextCatalog, language: str | None, default: str) -> Text:
    """What a customer is told when the engine fails on their message (templates/texts/engine.yaml)."""
    return Text(body=texts.say("engine.apology", language, default) or "…")


@dataclass(frozen=True)
class InboxConfig:
    default_language: str
    batch_size: int = BATCH_SIZE
    handoff_after_misses: int = 0
    """Misunderstandings in a row after which `auto_handoff` hands the chat to a person (0: never)."""


HANDOFF_OPENED = "_handoff_opened"
"""Set by the `handoff` action: the conversation is a person's from now on (its mode was updated)."""
MISUNDERSTOOD = "_misunderstood"
"""Misunderstandings in a row (Outcome.missed), kept across the fallback's goto to the help state."""
AutoHandoff = Callable[[int, str, str, datetime], Awaitable[list[OutboundMessage]]]
"""(conversation id, phone, language, now) -> what to tell the customer; runs inside the batch."""


def event_for(row: Message) -> Event:
    """Rebuild the engine's event from the stored inbound row (its payload is Meta's own JSON)."""
    raw = (row.payload or {}).get("message") or {}
    try:
        message = InboundMessage.model_validate(raw)
    except ValueError:
        return Event(type="unsupported", text=row.message_content)
    return Event(type=message.kind, text=message.text_content, reply_id=message.reply_id)


def outbound_row(phone: str, message: OutboundMessage, *, reply_to: str | None, now: datetime) -> Message:
    """A queued outbox row; the outbox worker sends it after the transaction that created it commits."""
    return Message(
        customer_phone=phone,
        message_direction=Direction.OUTBOUND,
        message_type=message.message_type,
        message_content=message.log_content(),
        file_url=getattr(message, "file_url", None),
        file_name=getattr(message, "filename", None),
        delivery_status=DeliveryStatus.QUEUED,
        payload=message.model_dump(mode="json"),
        reply_to=reply_to,
        next_attempt_at=now,
    )


class InboxWorker:
    """Processes pending inbound rows; `wake()` after new ones are committed."""

    def __init__(
        self,
        engine: Engine,
        claims: Claims,
        config: InboxConfig,
        on_queued: Callable[[], None],
        on_handled: Callable[[Sequence[str]], None] | None = None,
        clock: Clock = utc_now,
        on_human_messages: Callable[[list[Message]], None] | None = None,
        auto_handoff: AutoHandoff | None = None,
        relay: Relay | None = None,
    ) -> None:
        self.engine = engine
        self._relay = relay
        """handoff.relay_to_whatsapp: technicians' messages go to it, never to the engine."""
        self._on_human_messages = on_human_messages
        self._auto_handoff = auto_handoff
        self._claims = claims
        self._config = config
        self._on_queued = on_queued
        self._on_handled = on_handled
        self._clock = clock
        self._loop = Loop("inbox-worker", self._step, POLL_SECONDS, eager=True)
        self._timers_checked = float("-inf")

    def wake(self) -> None:
        self._loop.wake()

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Finish the batch in hand (never cancel it mid-transaction: see bot/loops.py), then end."""
        await self._loop.stop()

    async def _step(self) -> int:
        """A batch of inbound messages, and the timers that came due: at most once a second, so a busy
        inbox does not ask the database about timers (which have minutes to run) after every batch."""
        handled = await self.process_batch()
        if time.monotonic() - self._timers_checked >= TIMER_CHECK_SECONDS:
            self._timers_checked = time.monotonic()
            handled += await self.fire_timers()
        return handled

    async def process_batch(self) -> int:
        """Handle one batch of pending inbound rows; returns how many were handled."""
        async with in_transaction():
            rows = await self._claims.pending_inbound(self._config.batch_size)
            if not rows:
                return 0
            batch = await self._handle_rows(rows)
        outbound = batch.outbound
        if batch.human and self._on_human_messages:
            self._on_human_messages(batch.human)
        if outbound or batch.relayed:
            self._on_queued()
        if self._on_handled:
            self._on_handled([row.whatsapp_message_id for row in rows if row.whatsapp_message_id])
        return len(rows)

    async def fire_timers(self) -> int:
        """Move conversations whose `on: timeout` is due (as of the clock); returns how many moved.

        A timer is stale, and only deleted, when its conversation has moved on or a person has it. One
        whose customer has written meanwhile waits: their message is handled first and sets it anew.
        """
        now = self._clock()
        async with in_transaction():
            timers = await self._claims.due_timers(now, self._config.batch_size)
            if not timers:
                return 0
            conversations = {
                c.id: c
                for c in await Conversation.filter(
                    id__in=[timer.conversation_id for timer in timers]
                ).prefetch_related("customer")
            }
            writing: set[Any] = set(
                await Message.filter(
                    message_direction=Direction.INBOUND,
                    delivery_status=DeliveryStatus.PENDING,
                    customer_phone__in=[c.customer.wa_id for c in conversations.values()],
                ).values_list("customer_phone", flat=True)
            )
            batch = _Batch(now)
            for timer in timers:
                conversation = conversations.get(timer.conversation_id)
                if conversation is None or conversation.customer.wa_id in writing:
                    continue
                batch.timers[conversation.id] = None
                if conversation.mode == ConversationMode.HUMAN or (conversation.flow, conversation.state) != (
                    timer.flow,
                    timer.state,
                ):
                    continue
                try:
                    result = await self._run_engine(
                        conversation, conversation.customer, Event(type=TIMEOUT), now
                    )
                except Exception:
                    log.exception("timeout of %s.%s failed", timer.flow, timer.state)
                    continue
                batch.apply(conversation, conversation.customer, result, reply_to=None)
            await batch.write()
        if batch.outbound:
            self._on_queued()
        return len(batch.conversations)

    async def _handle_rows(self, rows: list[Message]) -> _Batch:
        batch = _Batch(self._clock())
        phones = {row.customer_phone for row in rows}
        technicians = await self._relay.technicians(phones) if self._relay else {}
        customers = await _customers_for([row for row in rows if row.customer_phone not in technicians])
        conversations = await _conversations_for(customers.values())
        batch.customers.extend(customers.values())  # profile name and window, even when not moved
        for row in rows:
            started = time.perf_counter()
            if (technician := technicians.get(row.customer_phone)) is not None:
                outcome = await self._technician_row(technician, row, batch)
            else:
                customer = customers[row.customer_phone]
                conversation = conversations[customer.id]
                outcome = await self._handle_one(row, customer, conversation, batch)
            row.delivery_status = DeliveryStatus.DELIVERED
            row.processed_at = batch.now
            log.info(
                "handled %s: %s in %.2f ms",
                row.whatsapp_message_id,
                outcome,
                (time.perf_counter() - started) * 1e3,
            )
        await batch.write()
        await Message.bulk_update(
            rows, fields=["delivery_status", "processed_at", "error_title", "updated_at"]
        )
        return batch

    async def _technician_row(self, technician: Technician, row: Message, batch: _Batch) -> str:
        """A technician writing to the business number (the relay): a command or a reply, no customer."""
        assert self._relay is not None
        batch.relayed = True
        try:
            batch.outbound.extend(await self._relay.technician_message(technician, row, batch.now))
        except Exception as exc:
            log.exception("relay failed on %s", row.whatsapp_message_id)
            row.error_title = f"relay error: {exc!r}"[:500]
            return "relay error"
        return f"technician {technician.id}'s message (relay)"

    async def _relayed(self, customer: Customer, row: Message, batch: _Batch, *, opened: bool) -> None:
        """Relay on: a customer's message in a person's chat to its owner, or a new waiting chat to all."""
        if self._relay is None:
            return
        relay = self._relay.handed_off if opened else self._relay.customer_message
        try:
            batch.outbound.extend(await relay(customer, row, batch.now))
        except Exception:
            log.exception("relay to technicians failed on %s", row.whatsapp_message_id)

    async def _handle_one(
        self, row: Message, customer: Customer, conversation: Conversation, batch: _Batch
    ) -> str:
        payload: dict[str, Any] = row.payload or {}
        if name := payload.get("profile_name"):
            customer.profile_name = name
        if row.sent_at and (customer.last_inbound_at is None or row.sent_at > customer.last_inbound_at):
            customer.last_inbound_at = row.sent_at
        if conversation.mode == ConversationMode.HUMAN:
            batch.timers[conversation.id] = None  # a person has it: no bot timeout
            batch.human.append(row)
            await self._relayed(customer, row, batch, opened=False)
            return "logged (a person has this conversation)"
        try:
            result = await self._run_engine(conversation, customer, event_for(row), batch.now)
        except Exception as exc:
            log.exception("engine failed on %s", row.whatsapp_message_id)
            row.error_title = f"engine error: {exc!r}"[:500]
            batch.outbound.append(
                outbound_row(
                    row.customer_phone,
                    apology(self.engine.flows.texts, customer.language, self._config.default_language),
                    reply_to=row.whatsapp_message_id,
                    now=batch.now,
                )
            )
            return "engine error, apology queued"
        batch.apply(conversation, customer, result, reply_to=row.whatsapp_message_id)
        if result.variables.pop(HANDOFF_OPENED, None):
            conversation.mode = ConversationMode.HUMAN  # the action updated the row; later rows see it
            await self._relayed(customer, row, batch, opened=True)
            return f"{result.flow}.{result.state}, handed to a person"
        after = self._config.handoff_after_misses
        if not (self._auto_handoff and after):
            pass
        elif not result.missed:
            result.variables.pop(MISUNDERSTOOD, None)
        elif (missed := int(result.variables.get(MISUNDERSTOOD) or 0) + 1) < after:
            result.variables[MISUNDERSTOOD] = missed
        else:
            result.variables.pop(MISUNDERSTOOD, None)
            language = customer.language or self._config.default_language
            told = await self._auto_handoff(conversation.id, customer.wa_id, language, batch.now)
            batch.outbound.extend(
                outbound_row(customer.wa_id, message, reply_to=row.whatsapp_message_id, now=batch.now)
                for message in told
            )
            conversation.mode = ConversationMode.HUMAN
            await self._relayed(customer, row, batch, opened=True)
            return f"{result.flow}.{result.state}, handed to a person after {after} misses"
        return f"{result.flow}.{result.state}, {len(result.outbound)} outbound"

    async def _run_engine(
        self, conversation: Conversation, customer: Customer, event: Event, now: datetime
    ) -> Outcome:
        state = ConversationState(
            flow=conversation.flow, state=conversation.state, variables=dict(conversation.variables or {})
        )
        info = CustomerInfo(
            wa_id=customer.wa_id,
            name=customer.profile_name,
            language=customer.language or self._config.default_language,
        )
        return await self.engine.handle(state, info, event, now)


@dataclass
class _Batch:
    """What one transaction writes: conversations moved, their customers, timers and queued replies."""

    now: datetime
    conversations: list[Conversation] = field(default_factory=list)
    customers: list[Customer] = field(default_factory=list)
    timers: dict[int, ConversationTimer | None] = field(default_factory=dict)
    """Conversation id -> its timer from now on (None: none); conversations not here keep theirs."""
    outbound: list[Message] = field(default_factory=list)
    human: list[Message] = field(default_factory=list)
    """Inbound rows of conversations a person has: only logged, and shown to them live."""
    relayed: bool = False
    """A technician wrote (the relay): their reply may have been queued through the desk."""

    def apply(
        self, conversation: Conversation, customer: Customer, result: Outcome, *, reply_to: str | None
    ) -> None:
        conversation.flow, conversation.state, conversation.variables = (
            result.flow,
            result.state,
            result.variables,
        )
        if conversation not in self.conversations:
            self.conversations.append(conversation)
        if result.language:
            customer.language = result.language
        if customer not in self.customers:
            self.customers.append(customer)
        self.timers[conversation.id] = (
            ConversationTimer(
                conversation_id=conversation.id,
                flow=result.flow,
                state=result.state,
                due_at=self.now + result.wait,
            )
            if result.wait is not None
            else None
        )
        for message in result.outbound:
            self.outbound.append(outbound_row(customer.wa_id, message, reply_to=reply_to, now=self.now))

    async def write(self) -> None:
        """Call inside the batch's transaction."""
        if self.customers:
            await Customer.bulk_update(
                self.customers, fields=["profile_name", "language", "last_inbound_at", "updated_at"]
            )
        if self.conversations:
            await Conversation.bulk_update(
                self.conversations, fields=["flow", "state", "variables", "updated_at"]
            )
        if self.timers:
            await ConversationTimer.filter(conversation_id__in=list(self.timers)).delete()
            timers = [timer for timer in self.timers.values() if timer is not None]
            if timers:
                await ConversationTimer.bulk_create(timers)
        if self.outbound:
            await Message.bulk_create(self.outbound)


async def _customers_for(rows: Sequence[Message]) -> dict[str, Customer]:
    phones = list(dict.fromkeys(row.customer_phone for row in rows))
    found = {c.wa_id: c for c in await Customer.filter(wa_id__in=phones)}
    missing = [phone for phone in phones if phone not in found]
    if missing:
        await Customer.bulk_create([Customer(wa_id=phone) for phone in missing], ignore_conflicts=True)
        found.update({c.wa_id: c for c in await Customer.filter(wa_id__in=missing)})
    return found


async def _conversations_for(customers: Iterable[Customer]) -> dict[int, Conversation]:
    ids = [customer.id for customer in customers]
    found = {c.customer_id: c for c in await Conversation.filter(customer_id__in=ids)}
    missing = [customer_id for customer_id in ids if customer_id not in found]
    if missing:
        await Conversation.bulk_create(
            [Conversation(customer_id=customer_id, variables={}) for customer_id in missing],
            ignore_conflicts=True,
        )
        found.update({c.customer_id: c for c in await Conversation.filter(customer_id__in=missing)})
    return found
