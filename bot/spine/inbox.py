"""The durable inbox: stored inbound messages → the engine → conversation state and outbox rows.

The webhook only stores; this worker does the rest, after the 200. It takes unhandled inbound rows in
batches, handles each conversation's messages one at a time and in order, and commits, in one
transaction per batch, every conversation's new state, the inbound rows marked handled, and the replies
as queued outbox rows. A crash anywhere leaves either nothing or all of it, and a restarted worker
simply finds the same pending rows again: every acknowledged message is handled exactly once.

A batch that fails (an action's variables that are not JSON, a constraint at write time, a statement
that aborts a PostgreSQL transaction) is rolled back whole and its rows are handled again one by one,
each in its own transaction, so one bad row cannot hold up the other customers. A row that fails on its
own has the failure counted on it (`attempts`, the reason in `error_title`) in a transaction of its own;
while it is pending, its customer's rows are handled alone. After `max_attempts` it is parked: `failed`,
logged at ERROR, the customer told once, and their later messages go on as usual. The normal path costs
what it did: no savepoints, no extra statements.

Handoff policy (the relay, auto handoff after misses) is behind `HandoffPolicy`, which bot/handoff
implements; this module imports nothing from there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from tortoise import timezone
from tortoise.exceptions import DBConnectionError

from bot.clock import Clock, utc_now
from bot.db import rows as rows_of
from bot.db import sql
from bot.db.claims import Claims
from bot.db.models import (
    ConsentAction,
    ConsentScope,
    ConsentSource,
    Conversation,
    ConversationMode,
    ConversationStep,
    ConversationTimer,
    Customer,
    DeliveryStatus,
    Direction,
    Message,
    Technician,
)
from bot.db.transactions import atomic, on_commit
from bot.db.writes import Writes
from bot.engine import Conversation as ConversationState
from bot.engine import Customer as CustomerInfo
from bot.engine import Engine, Event, Outcome
from bot.engine.events import TIMEOUT
from bot.engine.texts import TextCatalog
from bot.identity import customer_for_address
from bot.loops import Loop
from bot.monitoring import metrics
from bot.privacy.consent import record as record_consent
from bot.privacy.keywords import Found as Keyword
from bot.privacy.keywords import keyword_of
from bot.spine.flood import Throttled, throttled
from bot.spine.outbox import enqueue, outbound_row, write_outbound
from bot.whatsapp.notifications import InboundMessage
from bot.whatsapp.outbound import OutboundMessage, Text

log = logging.getLogger(__name__)

BATCH_SIZE = 200
POLL_SECONDS = 1.0
TIMER_CHECK_SECONDS = 1.0
MAX_ATTEMPTS = 3
"""Times a row that fails on its own is tried before it is parked as failed."""
REASON_MAX = 500


def apology(texts: TextCatalog, language: str | None, default: str) -> Text:
    """What a customer is told when the engine fails on their message (templates/texts/engine.yaml)."""
    return Text(body=texts.say("engine.apology", language, default) or "…")


@dataclass(frozen=True)
class InboxConfig:
    default_language: str
    batch_size: int = BATCH_SIZE
    max_attempts: int = MAX_ATTEMPTS
    inbound_per_minute: int = 30
    """limits.inbound_per_minute: more from one customer in a minute are kept, not answered (flood.py)."""


MISUNDERSTOOD = "_misunderstood"
"""Misunderstandings in a row (Outcome.missed), kept across the fallback's goto to the help state."""


class HandoffPolicy(Protocol):
    """What the inbox asks of the handoff side (bot/handoff/policy.py implements it). Every call runs
    inside the inbox's transaction; the rows it returns are queued with the batch."""

    @property
    def after_misses(self) -> int:
        """Misunderstandings in a row after which `auto_handoff` is called (0: never)."""

    async def technicians(self, addresses: Collection[str]) -> Mapping[str, Technician]:
        """The senders among `addresses` who are technicians (the relay): never the engine."""

    async def technician_message(self, technician: Technician, row: Message, now: datetime) -> list[Message]:
        """A technician wrote to the business number: a command or a reply to their customer."""

    async def customer_message(self, customer: Customer, row: Message, now: datetime) -> list[Message]:
        """A customer wrote in a chat a person has."""

    async def handed_off(self, customer: Customer, row: Message, now: datetime) -> list[Message]:
        """The chat has just become a person's (Outcome.hand_off, or `auto_handoff`)."""

    async def auto_handoff(
        self, conversation_id: int, customer: Customer, language: str, now: datetime
    ) -> list[OutboundMessage]:
        """Hand the chat to a person after too many misunderstandings; what to tell the customer."""


def event_for(row: Message) -> Event:
    """Rebuild the engine's event from the stored inbound row (its payload is Meta's own JSON).

    A text message's event is its columns: the intake stored its kind and (clipped) text from the same
    parse, and a text has no reply id, so the payload is not validated a second time (the hot path: a
    pydantic validation per message). Every other kind is read back from its payload."""
    if row.message_type == "text" and row.message_content is not None:
        return Event(type="text", text=row.message_content)
    raw = (row.payload or {}).get("message") or {}
    try:
        message = InboundMessage.model_validate(raw)
    except ValueError:
        return Event(type="unsupported", text=row.message_content)
    return Event(type=message.kind, text=message.text_content, reply_id=message.reply_id)


class InboxWorker:
    """Processes pending inbound rows; `wake()` after new ones are committed."""

    def __init__(
        self,
        engine: Engine,
        claims: Claims,
        config: InboxConfig,
        on_queued: Callable[[], None],
        on_handled: Callable[[Sequence[tuple[int | str, str]]], None] | None = None,
        clock: Clock = utc_now,
        on_human_messages: Callable[[list[Message]], None] | None = None,
        handoff: HandoffPolicy | None = None,
        on_parked: Callable[[Message], None] | None = None,
    ) -> None:
        self.engine = engine
        self._handoff = handoff
        """The relay and auto handoff (bot/handoff/policy.py, as bot/pipeline.py wires it); None: neither."""
        self._on_human_messages = on_human_messages
        self._on_parked = on_parked
        """Called after the commit that parked a row (the panel lists it)."""
        self._claims = claims
        self._config = config
        self._on_queued = on_queued
        self._on_handled = on_handled
        self._clock = clock
        self._loop = Loop("inbox-worker", self._step, POLL_SECONDS, eager=True)
        self._timers_checked = float("-inf")
        self._full_batch = False
        """The last batch read as many rows as it may: more may be pending."""

    def wake(self) -> None:
        self._loop.wake()

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Finish the batch in hand (never cancel it mid-transaction: see bot/loops.py), then end."""
        await self._loop.stop()

    async def _step(self) -> bool:
        """A batch of inbound messages, and the timers that came due: at most once a second, so a busy
        inbox does not ask the database about timers (which have minutes to run) after every batch.
        True when either read a full batch: more may be waiting, and the loop goes on at once; else it
        waits for a wake (the intake's commit) or the poll, rather than spend a transaction finding
        nothing after every batch."""
        await self.process_batch()
        more = self._full_batch
        if time.monotonic() - self._timers_checked >= TIMER_CHECK_SECONDS:
            self._timers_checked = time.monotonic()
            more = await self.fire_timers() >= self._config.batch_size or more
        return more

    async def process_batch(self) -> int:
        """Handle one batch of pending inbound rows; returns how many were handled or parked.

        Rows of customers with a row that failed before go one by one (`_alone`), the rest together. A
        failing batch is rolled back whole and all its rows go one by one.
        """
        claimed: list[Message] = []
        suspect: set[int | str] = set()
        batch: _Batch | None = None
        limit = self._config.batch_size
        read = await self._claims.read_pending_inbound(limit)
        if read is not None and not read:
            self._full_batch = False
            return 0  # nothing pending: no transaction at all
        try:
            async with atomic():
                if read is None:
                    claimed.extend(await self._claims.pending_inbound(limit))
                else:
                    claimed.extend(await self._claims.still_pending(read))
                self._full_batch = len(read if read is not None else claimed) >= limit
                suspect = {_sender(row) for row in claimed if row.attempts}
                together = [row for row in claimed if _sender(row) not in suspect]
                if together:
                    batch = await self._handle_rows(together)
        except (DBConnectionError, ConnectionError):
            raise  # the database, not a row: the loop tries again later
        except Exception:
            if not claimed:
                raise
            log.warning(
                "a batch of %d messages failed; handling them one by one", len(claimed), exc_info=True
            )
            batch, suspect = None, {_sender(row) for row in claimed}
        if batch is not None:
            self._committed(batch)
        alone = [row for row in claimed if _sender(row) in suspect]
        return (len(batch.rows) if batch else 0) + (await self._alone(alone) if alone else 0)

    async def _alone(self, rows: list[Message]) -> int:
        """Each row in its own transaction, in order; a row that fails holds back only its customer's
        later rows (until it is parked). Returns how many were handled or parked."""
        done = 0
        held: set[int | str] = set()
        for row in rows:
            if _sender(row) in held:
                continue
            try:
                async with atomic():
                    claimed = await self._claims.inbound_row(row.id)
                    batch = await self._handle_rows([claimed], isolated=True) if claimed else None
            except (DBConnectionError, ConnectionError):
                raise
            except Exception as exc:
                log.warning("%s failed on its own", row.whatsapp_message_id, exc_info=True)
                if await self._count_failure(row.id, exc):
                    done += 1
                else:
                    held.add(_sender(row))
                continue
            if batch is None:  # handled elsewhere meanwhile, or an earlier one of theirs is pending
                held.add(_sender(row))
                continue
            self._committed(batch)
            done += 1
        return done

    async def _count_failure(self, row_id: int, exc: Exception) -> bool:
        """In a transaction of its own (the failed one is gone): one more attempt on the row, and after
        the last one the row is parked. Returns whether it was parked."""
        reason = f"{exc.__class__.__name__}: {exc}"[:REASON_MAX]
        async with atomic():
            row = await self._claims.inbound_row(row_id)
            if row is None:
                return False
            row.attempts += 1
            row.error_title = reason
            if row.attempts < self._config.max_attempts:
                await row.save(update_fields=["attempts", "error_title", "updated_at"])
                return False
            await self._park(row)
        log.error(
            "gave up on %s after %d attempts: %s",
            row.whatsapp_message_id,
            row.attempts,
            reason,
            extra={"wamid": row.whatsapp_message_id, "outcome": "parked"},
        )
        metrics.inbound([row.message_type], "failed")
        return True

    async def _park(self, row: Message) -> None:
        """Inside the failure's transaction: the row has failed for good, and its sender hears of it
        once, unless a technician wrote (the relay) or a person has the chat (they see it in the panel).
        """
        now = self._clock()
        row.delivery_status = DeliveryStatus.FAILED
        row.processed_at = row.failed_at = now
        await row.save(
            update_fields=[
                "attempts",
                "error_title",
                "delivery_status",
                "processed_at",
                "failed_at",
                "updated_at",
            ]
        )
        if self._on_parked is not None:
            on_commit(partial(self._on_parked, row))
        if self._handoff is not None and await self._handoff.technicians([row.address]):
            return
        try:
            async with atomic():  # a savepoint: the row is parked even if its customer cannot be written
                customer = await self._known_customer(row)
        except Exception:
            log.warning("could not record the customer of %s", row.whatsapp_message_id, exc_info=True)
            customer = None
        if customer is None or await Conversation.exists(
            customer_id=customer.id, mode=ConversationMode.HUMAN
        ):
            return
        told = apology(self.engine.flows.texts, customer.language, self._config.default_language)
        await enqueue(customer, told, reply_to=row.whatsapp_message_id, now=now)
        on_commit(self._on_queued)

    @staticmethod
    async def _known_customer(row: Message) -> Customer:
        """The sender as a customer with a conversation, their name and 24-hour window noted, so staff
        can open the chat and answer the message the bot could not."""
        customer = (await _customers_for([row]))[_customer_of(row)]
        await _conversations_for([customer])
        _note_sender(customer, row)
        await customer.save(update_fields=[*NOTED_FIELDS, "updated_at"])
        return customer

    def _committed(self, batch: _Batch) -> None:
        """After the batch's commit: the handled lines, and who is told what."""
        for handled in batch.handled:
            handled.log()
        if batch.human and self._on_human_messages:
            self._on_human_messages(batch.human)
        if batch.outbound or batch.relayed:
            self._on_queued()
        if self._on_handled:
            self._on_handled(_newest_per_sender(batch.rows))
        metrics.inbound((row.message_type for row in batch.rows), "handled")

    async def fire_timers(self) -> int:
        """Move conversations whose `on: timeout` is due (as of the clock); returns how many moved.

        A timer is stale, and only deleted, when its conversation has moved on or a person has it. One
        whose customer has written meanwhile waits: their message is handled first and sets it anew.
        The timers fire inside a savepoint: when that fails, they fire again one by one, and one that
        fails alone is dropped (logged at ERROR), so it cannot hold up the others for ever.
        """
        now = self._clock()
        async with atomic():
            timers = await self._claims.due_timers(now, self._config.batch_size)
            if not timers:
                return 0
            try:
                async with atomic():
                    batches = [await self._fire(timers, now)]
            except (DBConnectionError, ConnectionError):
                raise
            except Exception:
                log.warning("%d timers failed together; firing them one by one", len(timers), exc_info=True)
                batches = []
                for timer in timers:
                    try:
                        async with atomic():
                            batches.append(await self._fire([timer], now, isolated=True))
                    except (DBConnectionError, ConnectionError):
                        raise
                    except Exception:
                        log.error(
                            "dropped the timer of conversation %d at %s.%s: it fails on its own",
                            timer.conversation_id,
                            timer.flow,
                            timer.state,
                            exc_info=True,
                        )
                        await ConversationTimer.filter(id=timer.id).delete()
        if any(batch.outbound for batch in batches):
            self._on_queued()
        return sum(len(batch.conversations) for batch in batches)

    async def _fire(
        self, timers: list[ConversationTimer], now: datetime, *, isolated: bool = False
    ) -> _Batch:
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
                customer_id__in=[c.customer_id for c in conversations.values()],
            ).values_list("customer_id", flat=True)
        )
        batch = _Batch(now, isolated=isolated)
        for timer in timers:
            conversation = conversations.get(timer.conversation_id)
            if conversation is None or conversation.customer_id in writing:
                continue
            batch.timers[conversation.id] = None
            if conversation.mode == ConversationMode.HUMAN or (conversation.flow, conversation.state) != (
                timer.flow,
                timer.state,
            ):
                continue
            try:
                async with self._guarded(batch):
                    result = await self._run_engine(
                        conversation, conversation.customer, Event(type=TIMEOUT), now
                    )
            except Exception:
                log.exception("timeout of %s.%s failed", timer.flow, timer.state)
                continue
            batch.apply(conversation, conversation.customer, result, reply_to=None)
        writes = Writes()
        await batch.write(writes)
        await writes.run()  # in a savepoint: the timers' transaction commits when it ends
        return batch

    @staticmethod
    def _guarded(batch: _Batch) -> AbstractAsyncContextManager[None]:
        """Around one step that may fail on its own (the engine, the relay): a savepoint when the row is
        handled alone, so the step is undone alone (and a failed statement cannot abort PostgreSQL's
        whole transaction); nothing on the normal path, which retries alone when anything fails."""
        return atomic() if batch.isolated else nullcontext()

    async def _handle_rows(self, rows: list[Message], *, isolated: bool = False) -> _Batch:
        batch = _Batch(self._clock(), rows=rows, isolated=isolated)
        addresses = {row.address for row in rows}
        technicians = await self._handoff.technicians(addresses) if self._handoff else {}
        customers = await _customers_for(rows)
        conversations = await _conversations_for(
            customers[_customer_of(row)] for row in rows if row.address not in technicians
        )
        batch.customers.update((c.id, c) for c in customers.values())  # name and window, even unmoved
        flood = await throttled([row for row in rows if row.address not in technicians], self._limit)
        for row in rows:
            started = time.perf_counter()
            conversation_id: int | None = None
            customer = customers[_customer_of(row)]
            if (technician := technicians.get(row.address)) is not None:
                _note_sender(customer, row)  # their 24-hour window, as anyone's
                outcome = await self._technician_row(technician, row, batch)
            else:
                conversation = conversations[customer.id]
                conversation_id = conversation.id
                if (said := self._keyword(row)) is not None:
                    outcome = await self._opt(row, customer, conversation, said, batch)
                elif row.id in flood and conversation.mode == ConversationMode.BOT:
                    outcome = self._flooded(row, customer, flood[row.id], batch)
                else:
                    outcome = await self._handle_one(row, customer, conversation, batch)
            row.delivery_status = DeliveryStatus.HANDLED
            row.processed_at = batch.now
            ms = round((time.perf_counter() - started) * 1e3, 2)
            batch.handled.append(Handled(row.whatsapp_message_id, conversation_id, outcome, ms))
        writes = Writes()
        await batch.write(writes)
        _mark_handled(rows, batch.now, writes)
        await writes.run(last=True)  # nothing follows in the batch's transaction
        return batch

    def _keyword(self, row: Message) -> Keyword | None:
        """A text that is only a STOP or START word (templates/texts/consent.yaml)."""
        if row.message_type != "text":
            return None
        return keyword_of(row.message_content, self.engine.flows.texts)

    async def _opt(
        self, row: Message, customer: Customer, conversation: Conversation, said: Keyword, batch: _Batch
    ) -> str:
        """STOP or START: recorded in the consent ledger and confirmed in the customer's language (else
        the word's), never run through the flow. In a person's chat they see the word too."""
        _note_sender(customer, row)
        if customer.language is None:
            customer.language = said.language
        stop = said.keyword == "stop"
        action = ConsentAction.OPT_OUT if stop else ConsentAction.OPT_IN
        await record_consent(
            customer, ConsentScope.ALL, action, ConsentSource.KEYWORD, batch.now, row.message_content
        )
        key = "consent.opted_out" if stop else "consent.opted_in"
        told = self.engine.flows.texts.say(key, customer.language, self._config.default_language)
        batch.outbound.append(
            outbound_row(customer, Text(body=told or "…"), reply_to=row.whatsapp_message_id, now=batch.now)
        )
        if conversation.mode == ConversationMode.HUMAN:
            batch.human.append(row)
        return "opted out (STOP), confirmed" if stop else "opted in (START), confirmed"

    @property
    def _limit(self) -> int:
        return self._config.inbound_per_minute

    def _flooded(self, row: Message, customer: Customer, throttle: Throttled, batch: _Batch) -> str:
        """Over the limit: kept and marked handled, never run through the engine; the first one gets
        the note (templates/texts/engine.yaml `flood`)."""
        _note_sender(customer, row)
        row.error_title = f"not answered: more than {self._limit} messages in a minute (flood)"
        if not throttle.note:
            return "not answered (flood)"
        note = self.engine.flows.texts.say("engine.flood", customer.language, self._config.default_language)
        batch.outbound.append(
            outbound_row(customer, Text(body=note or "…"), reply_to=row.whatsapp_message_id, now=batch.now)
        )
        return "not answered (flood), note queued"

    async def _technician_row(self, technician: Technician, row: Message, batch: _Batch) -> str:
        """A technician writing to the business number (the relay): a command or a reply, no customer."""
        assert self._handoff is not None
        batch.relayed = True
        try:
            async with self._guarded(batch):
                batch.outbound.extend(await self._handoff.technician_message(technician, row, batch.now))
        except Exception as exc:
            log.exception("relay failed on %s", row.whatsapp_message_id)
            row.error_title = f"relay error: {exc!r}"[:REASON_MAX]
            return "relay error"
        return f"technician {technician.id}'s message (relay)"

    async def _relayed(self, customer: Customer, row: Message, batch: _Batch, *, opened: bool) -> None:
        """Relay on: a customer's message in a person's chat to its owner, or a new waiting chat to all."""
        if self._handoff is None:
            return
        relay = self._handoff.handed_off if opened else self._handoff.customer_message
        try:
            async with self._guarded(batch):
                batch.outbound.extend(await relay(customer, row, batch.now))
        except Exception:
            log.exception("relay to technicians failed on %s", row.whatsapp_message_id)

    async def _handle_one(
        self, row: Message, customer: Customer, conversation: Conversation, batch: _Batch
    ) -> str:
        _note_sender(customer, row)
        if conversation.mode == ConversationMode.HUMAN:
            batch.timers[conversation.id] = None  # a person has it: no bot timeout
            batch.human.append(row)
            await self._relayed(customer, row, batch, opened=False)
            return "logged (a person has this conversation)"
        try:
            async with self._guarded(batch):
                result = await self._run_engine(conversation, customer, event_for(row), batch.now)
        except Exception as exc:
            log.exception("engine failed on %s", row.whatsapp_message_id)
            row.error_title = f"engine error: {exc!r}"[:REASON_MAX]
            batch.outbound.append(
                outbound_row(
                    customer,
                    apology(self.engine.flows.texts, customer.language, self._config.default_language),
                    reply_to=row.whatsapp_message_id,
                    now=batch.now,
                )
            )
            return "engine error, apology queued"
        if result.hand_off:
            batch.apply(conversation, customer, result, reply_to=row.whatsapp_message_id)
            conversation.mode = ConversationMode.HUMAN  # the action updated the row; later rows see it
            await self._relayed(customer, row, batch, opened=True)
            return f"{result.flow}.{result.state}, handed to a person"
        if not self._missed_too_often(result):
            batch.apply(conversation, customer, result, reply_to=row.whatsapp_message_id)
            return f"{result.flow}.{result.state}, {len(result.outbound)} outbound"
        # Too many misunderstandings: the customer hears one thing, the wait, not the fallback's
        # "I didn't understand" (or the help state it led to) before it.
        assert self._handoff is not None
        result.outbound.clear()
        batch.apply(conversation, customer, result, reply_to=row.whatsapp_message_id)
        language = customer.language or self._config.default_language
        told = await self._handoff.auto_handoff(conversation.id, customer, language, batch.now)
        batch.outbound.extend(
            outbound_row(customer, message, reply_to=row.whatsapp_message_id, now=batch.now)
            for message in told
        )
        conversation.mode = ConversationMode.HUMAN
        await self._relayed(customer, row, batch, opened=True)
        return f"{result.flow}.{result.state}, handed to a person after {self._handoff.after_misses} misses"

    def _missed_too_often(self, result: Outcome) -> bool:
        """Count misunderstandings in a row in the conversation's variables (a good answer starts again);
        True when this one reaches `after_misses` and the chat is to go to a person."""
        after = self._handoff.after_misses if self._handoff else 0
        if not after:
            return False
        if not result.missed:
            result.variables.pop(MISUNDERSTOOD, None)
            return False
        missed = int(result.variables.get(MISUNDERSTOOD) or 0) + 1
        if missed < after:
            result.variables[MISUNDERSTOOD] = missed
            return False
        result.variables.pop(MISUNDERSTOOD, None)
        return True

    async def _run_engine(
        self, conversation: Conversation, customer: Customer, event: Event, now: datetime
    ) -> Outcome:
        state = ConversationState(
            flow=conversation.flow, state=conversation.state, variables=dict(conversation.variables or {})
        )
        info = CustomerInfo(
            wa_id=customer.wa_id,
            name=customer.profile_name or customer.username,
            language=customer.language or self._config.default_language,
            id=customer.id,
        )
        return await self.engine.handle(state, info, event, now)


TIMER_COLUMNS = ("conversation_id", "flow", "state", "due_at")
STEP_COLUMNS = ("conversation_id", "flow", "state", "at")
"""The columns of a batch's timers and steps: written as rows of values, never a model per row."""


@dataclass
class _Batch:
    """What one transaction writes: conversations moved, their customers, timers and queued replies."""

    now: datetime
    rows: list[Message] = field(default_factory=list)
    """The inbound rows handled (none for timers)."""
    isolated: bool = False
    """Handled alone after a failure: each step that may fail runs in its own savepoint."""
    conversations: dict[int, Conversation] = field(default_factory=dict)
    """Conversation id -> the conversation moved (a dict: a batch's membership test stays O(1))."""
    customers: dict[int, Customer] = field(default_factory=dict)
    """Customer id -> the customer whose name, language or window to write."""
    timers: dict[int, tuple[int, str, str, datetime] | None] = field(default_factory=dict)
    """Conversation id -> its timer from now on, as TIMER_COLUMNS (None: none); conversations not here
    keep theirs."""
    outbound: list[Message] = field(default_factory=list)
    human: list[Message] = field(default_factory=list)
    """Inbound rows of conversations a person has: only logged, and shown to them live."""
    relayed: bool = False
    """A technician wrote (the relay): their reply may have been queued through the desk."""
    steps: list[tuple[int, str, str, datetime]] = field(default_factory=list)
    """Every state entered (goto hops too), as STEP_COLUMNS: the flows' funnels (bot/stats.py)."""
    handled: list[Handled] = field(default_factory=list)
    """Each row's handled line, logged after the commit: never while the transaction holds the lock,
    and never for a batch rolled back (its rows are handled again, and logged then)."""

    def apply(
        self, conversation: Conversation, customer: Customer, result: Outcome, *, reply_to: str | None
    ) -> None:
        conversation.flow, conversation.state, conversation.variables = (
            result.flow,
            result.state,
            result.variables,
        )
        self.conversations[conversation.id] = conversation
        if result.language:
            customer.language = result.language
        self.customers[customer.id] = customer
        self.timers[conversation.id] = (
            (conversation.id, result.flow, result.state, self.now + result.wait)
            if result.wait is not None
            else None
        )
        for message, flow in zip(result.outbound, _flows_of(result), strict=True):
            row = outbound_row(customer, message, reply_to=reply_to, now=self.now)
            row.flow = flow
            self.outbound.append(row)
        self.steps.extend((conversation.id, flow, state, self.now) for flow, state in result.entered)

    async def write(self, writes: Writes) -> None:
        """The batch's writes, gathered in `writes` (run together, bot/db/writes.Writes). Call inside
        the batch's transaction."""
        if self.customers:
            await writes.update(
                Customer, list(self.customers.values()), [*NOTED_FIELDS, "language", "updated_at"]
            )
        if self.conversations:
            await writes.update(
                Conversation, list(self.conversations.values()), ["flow", "state", "variables", "updated_at"]
            )
        if self.timers:
            ids = list(self.timers)
            writes.execute(
                f'DELETE FROM "conversation_timer" WHERE "conversation_id" IN ({sql.marks(len(ids))})', ids
            )
            timers = [timer for timer in self.timers.values() if timer is not None]
            await writes.insert(ConversationTimer, TIMER_COLUMNS, timers)
        if self.outbound:
            await write_outbound(self.outbound, writes)
        await writes.insert(ConversationStep, STEP_COLUMNS, self.steps)


def _flows_of(result: Outcome) -> list[str | None]:
    """The flow each outbound message was sent from (the engine says; else the state's flow)."""
    sent_from: list[str | None] = list(result.sent_from[: len(result.outbound)])
    return sent_from + [result.flow] * (len(result.outbound) - len(sent_from))


def _newest_per_sender(rows: Sequence[Message]) -> list[tuple[int | str, str]]:
    """Each sender and the wamid of their newest handled message: marking it read marks the earlier
    ones too (Meta's mark-as-read), so one receipt per sender and batch is enough."""
    newest = {_sender(row): row.whatsapp_message_id for row in rows if row.whatsapp_message_id}
    return [(sender, wamid) for sender, wamid in newest.items() if wamid]


def _mark_handled(rows: Sequence[Message], now: datetime, writes: Writes) -> None:
    """The rows are handled: one UPDATE for all of them (the same values), one per row only for those
    with an error noted (rare), not a CASE over every column of every row; hand-written (the ORM's
    UPDATE with an IN of up to a batch of ids costs more to build), and gathered in `writes`."""
    stamp = timezone.now()
    plain = [row.id for row in rows if row.error_title is None]
    if plain:
        writes.execute(
            'UPDATE "message" SET "delivery_status" = ?, "processed_at" = ?, "updated_at" = ? '
            f'WHERE "id" IN ({sql.marks(len(plain))})',
            [DeliveryStatus.HANDLED.value, now, stamp, *plain],
        )
    for row in rows:
        if row.error_title is not None:
            writes.execute(
                'UPDATE "message" SET "delivery_status" = ?, "processed_at" = ?, "error_title" = ?, '
                '"updated_at" = ? WHERE "id" = ?',
                [DeliveryStatus.HANDLED.value, now, row.error_title, stamp, row.id],
            )


@dataclass(frozen=True)
class Handled:
    """The one INFO line per handled message: its wamid, conversation and outcome as fields too (the
    JSON log lines carry them as keys: bot/monitoring/logs.py); never the customer's text or number."""

    wamid: str | None
    conversation_id: int | None
    outcome: str
    ms: float
    """How long the message took to handle, its batch's reads and writes left out."""

    def log(self) -> None:
        log.info(
            "handled %s (conversation %s): %s in %.2f ms",
            self.wamid,
            self.conversation_id,
            self.outcome,
            self.ms,
            extra={
                "wamid": self.wamid,
                "conversation_id": self.conversation_id,
                "outcome": self.outcome,
                "ms": self.ms,
            },
        )


NOTED_FIELDS = ("profile_name", "username", "last_inbound_at")
"""What a message says about its sender (_note_sender)."""


def _note_sender(customer: Customer, row: Message) -> None:
    """What a message tells about its sender: their profile name and username, and when their 24-hour
    window opened (technicians' too: one window per customer, whoever writes)."""
    payload: dict[str, Any] = row.payload or {}
    if name := payload.get("profile_name"):
        customer.profile_name = name
    if username := payload.get("username"):
        customer.username = username
    if row.sent_at and (customer.last_inbound_at is None or row.sent_at > customer.last_inbound_at):
        customer.last_inbound_at = row.sent_at


def _sender(row: Message) -> int | str:
    """Who a row is from, to keep each sender's rows in order: their customer (their address, for a row
    written without one)."""
    return row.customer_id if row.customer_id is not None else row.address


def _customer_of(row: Message) -> int:
    """Every inbound row has its customer (bot/identity sets it where the row is stored, _customers_for
    for a row written without one)."""
    if row.customer_id is None:
        raise ValueError(f"inbound message {row.id} has no customer")
    return row.customer_id


async def _customers_for(rows: Sequence[Message]) -> dict[int, Customer]:
    """The rows' customers. A row written without its customer (by a tool, or a test) gets the one of
    its address, made when there is none; its customer_id is written with the batch."""
    for row in rows:
        if row.customer_id is None:
            row.customer_id = (await customer_for_address(row.address, utc_now())).id
            await Message.filter(id=row.id).update(customer_id=row.customer_id)
    ids = list(dict.fromkeys(_customer_of(row) for row in rows))
    if not ids:
        return {}
    return {c.id: c for c in await rows_of.select(Customer, f'"id" IN ({sql.marks(len(ids))})', ids)}


async def _conversations_for(customers: Iterable[Customer]) -> dict[int, Conversation]:
    ids = list(dict.fromkeys(customer.id for customer in customers))
    found = {c.customer_id: c for c in await _conversations_of(ids)}
    missing = [customer_id for customer_id in ids if customer_id not in found]
    if missing:
        await Conversation.bulk_create(
            [Conversation(customer_id=customer_id, variables={}) for customer_id in missing],
            ignore_conflicts=True,
        )
        found.update({c.customer_id: c for c in await _conversations_of(missing)})
    return found


async def _conversations_of(customer_ids: list[int]) -> list[Conversation]:
    if not customer_ids:
        return []
    where = f'"customer_id" IN ({sql.marks(len(customer_ids))})'
    # what the batch reads and writes of a conversation: partial rows, saved only through update_rows
    columns = rows_of.columns_of(Conversation, "created_at")
    return await rows_of.select(Conversation, where, customer_ids, columns)
