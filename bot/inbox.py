"""The durable inbox: stored inbound messages → the engine → conversation state and outbox rows.

The webhook only stores; this worker does the rest, after the 200. It takes unhandled inbound rows in
batches, handles each conversation's messages one at a time and in order, and commits, in one
transaction per batch, every conversation's new state, the inbound rows marked handled, and the replies
as queued outbox rows. A crash anywhere leaves either nothing or all of it, and a restarted worker
simply finds the same pending rows again: every acknowledged message is handled exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.transactions import in_transaction

from bot.db.claims import Claims
from bot.db.models import Conversation, ConversationMode, Customer, DeliveryStatus, Direction, Message
from bot.engine import Conversation as ConversationState
from bot.engine import Customer as CustomerInfo
from bot.engine import Engine, Event
from bot.loops import finish
from bot.whatsapp.outbound import OutboundMessage, Text
from bot.whatsapp.types import InboundMessage

log = logging.getLogger(__name__)

BATCH_SIZE = 200
POLL_SECONDS = 1.0
APOLOGY = Text(body="Sorry, something went wrong on our side. A member of our team will look into it.")


@dataclass(frozen=True)
class InboxConfig:
    default_language: str
    batch_size: int = BATCH_SIZE


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
    ) -> None:
        self.engine = engine
        self._claims = claims
        self._config = config
        self._on_queued = on_queued
        self._on_handled = on_handled
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="inbox-worker")

    async def stop(self) -> None:
        """Finish the batch in hand (never cancel it mid-transaction: see bot/loops.py), then end."""
        self._stopping = True
        self._wakeup.set()
        await finish(self._task)

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            try:
                handled = await self.process_batch()
            except Exception:
                log.exception("inbox batch failed; retrying")
                handled = 0
                await asyncio.sleep(POLL_SECONDS)
            if handled:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), POLL_SECONDS)

    async def process_batch(self) -> int:
        """Handle one batch of pending inbound rows; returns how many were handled."""
        async with in_transaction():
            rows = await self._claims.pending_inbound(self._config.batch_size)
            if not rows:
                return 0
            outbound = await self._handle_rows(rows)
        if outbound:
            self._on_queued()
        if self._on_handled:
            self._on_handled([row.whatsapp_message_id for row in rows if row.whatsapp_message_id])
        return len(rows)

    async def _handle_rows(self, rows: list[Message]) -> list[Message]:
        now = datetime.now(UTC)
        customers = await _customers_for(rows)
        conversations = await _conversations_for(customers.values())
        outbound: list[Message] = []
        for row in rows:
            started = time.perf_counter()
            customer = customers[row.customer_phone]
            conversation = conversations[customer.id]
            outcome = await self._handle_one(row, customer, conversation, outbound, now)
            row.delivery_status = DeliveryStatus.DELIVERED
            row.processed_at = now
            log.info(
                "handled %s: %s in %.2f ms",
                row.whatsapp_message_id,
                outcome,
                (time.perf_counter() - started) * 1e3,
            )
        await Customer.bulk_update(
            list(customers.values()), fields=["profile_name", "last_inbound_at", "updated_at"]
        )
        await Conversation.bulk_update(
            list(conversations.values()), fields=["flow", "state", "variables", "updated_at"]
        )
        await Message.bulk_update(
            rows, fields=["delivery_status", "processed_at", "error_title", "updated_at"]
        )
        if outbound:
            await Message.bulk_create(outbound)
        return outbound

    async def _handle_one(
        self,
        row: Message,
        customer: Customer,
        conversation: Conversation,
        outbound: list[Message],
        now: datetime,
    ) -> str:
        payload: dict[str, Any] = row.payload or {}
        if name := payload.get("profile_name"):
            customer.profile_name = name
        if row.sent_at and (customer.last_inbound_at is None or row.sent_at > customer.last_inbound_at):
            customer.last_inbound_at = row.sent_at
        if conversation.mode == ConversationMode.HUMAN:
            return "logged (a person has this conversation)"
        state = ConversationState(
            flow=conversation.flow, state=conversation.state, variables=dict(conversation.variables or {})
        )
        info = CustomerInfo(
            wa_id=customer.wa_id,
            name=customer.profile_name,
            language=customer.language or self._config.default_language,
        )
        try:
            result = await self.engine.handle(state, info, event_for(row))
        except Exception as exc:
            log.exception("engine failed on %s", row.whatsapp_message_id)
            row.error_title = f"engine error: {exc!r}"[:500]
            outbound.append(
                outbound_row(row.customer_phone, APOLOGY, reply_to=row.whatsapp_message_id, now=now)
            )
            return "engine error, apology queued"
        conversation.flow, conversation.state, conversation.variables = (
            result.flow,
            result.state,
            result.variables,
        )
        for message in result.outbound:
            outbound.append(
                outbound_row(row.customer_phone, message, reply_to=row.whatsapp_message_id, now=now)
            )
        return f"{result.flow}.{result.state}, {len(result.outbound)} outbound"


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
