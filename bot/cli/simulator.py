"""The simulator: the whole bot with no WhatsApp and no server; `bot chat` and `bot flows test` run on it.
(Sandbox mode, bot/whatsapp/sandbox.py, is something else: the real server without credentials.)

A customer's turn takes the real path of one message: webhook-shaped JSON -> `parse_notification` ->
the intake writer -> the message log -> `InboxWorker.process_batch` (engine, state, outbox rows, the
handoff policy) -> `OutboxWorker.dispatch`/`settle` -> `FakeCloudAPI`, which enforces Meta's
limits and the 24-hour window. Every part is the server's, assembled by bot/pipeline.py with the same
settings; only the loops are not started: each step is driven here. The clock is ours: `advance()`
moves it and runs what came due (`on: timeout` timers, reminders, the handoff guards), so a test can
cross a day in no time.
"""

from __future__ import annotations

import itertools
import json
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from bot import crypto
from bot.db import close_db, init_db
from bot.db.config import is_memory, sqlite_url
from bot.db.models import (
    Appointment,
    AppointmentChange,
    AppointmentReminder,
    AppointmentSeat,
    AuditEvent,
    Conversation,
    ConversationTimer,
    Customer,
    DeliveryStatus,
    Direction,
    EarlyStatus,
    Handoff,
    HandoffNote,
    Message,
    Order,
    OrderStatusChange,
)
from bot.engine import FlowSet
from bot.engine.content import ContentSource
from bot.engine.templates import TemplateCatalog
from bot.engine.texts import pick_language
from bot.identity import customer_by_address, customer_for_phone
from bot.master_keys import load_key_ring
from bot.pipeline import Pipeline, Workers
from bot.settings import Settings
from bot.whatsapp.client import WhatsAppClient
from bot.whatsapp.fake_cloud_api import FakeCloudAPI
from bot.whatsapp.notifications import parse_notification
from bot.whatsapp.outbound import OUTBOUND_ADAPTER, Buttons, ListMessage, OutboundMessage, Template

DEFAULT_PHONE = "15550009999"
BUSINESS_PHONE = "15550001111"
MAX_ROUNDS = 50
"""Outbox rounds per turn at most: each round sends every due row, so one or two are normal."""
MediaKind = Literal["image", "video", "document", "audio", "voice", "sticker", "location"]
MEDIA_KINDS: tuple[str, ...] = ("image", "video", "document", "audio", "voice", "sticker", "location")
_MIME = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "document": "application/pdf",
    "audio": "audio/mpeg",
    "voice": "audio/ogg; codecs=opus",
    "sticker": "image/webp",
}


class SimClock:
    """Now, for the whole simulated bot: real time (or a fixed start) plus however far we have waited."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start
        self._offset = timedelta(0)

    def __call__(self) -> datetime:
        return (self._start or datetime.now(UTC)) + self._offset

    @property
    def now(self) -> datetime:
        return self()

    def advance(self, delta: timedelta) -> None:
        self._offset += delta

    def reset(self, start: datetime | None) -> None:
        self._start, self._offset = start, timedelta(0)


@dataclass(frozen=True)
class Choice:
    """A reply button or list row a customer can tap."""

    id: str
    title: str
    description: str | None = None
    row: bool = False


@dataclass(frozen=True)
class Reply:
    """One outbound message of a turn, and what became of it: sent, refused (failed) or still queued."""

    phone: str
    message: OutboundMessage
    status: str
    wamid: str | None = None
    error_code: int | None = None
    error_title: str | None = None
    template_buttons: tuple[str, ...] = ()
    """A template's quick-reply titles (from templates/), in the order of its payloads."""

    @property
    def refused(self) -> bool:
        return self.status == DeliveryStatus.FAILED

    @property
    def delivered(self) -> bool:
        return self.status == DeliveryStatus.SENT

    @property
    def choices(self) -> tuple[Choice, ...]:
        if isinstance(self.message, Template):
            return tuple(
                Choice(payload, title)
                for payload, title in zip(self.message.button_payloads, self.template_buttons, strict=False)
            )
        return choices_of(self.message)


def choices_of(message: OutboundMessage) -> tuple[Choice, ...]:
    if isinstance(message, Buttons):
        return tuple(Choice(b.id, b.title) for b in message.buttons)
    if isinstance(message, ListMessage):
        return tuple(Choice(r.id, r.title, r.description, row=True) for s in message.sections for r in s.rows)
    return ()


class ChoiceError(LookupError):
    """The customer tried to tap something the bot did not offer."""


class Simulator:
    """Async context manager: the database is opened on enter and closed on exit.

    `database_url` None: a temporary SQLite file, removed on exit. `flows` None: settings' flows_dir.
    The database is the simulator's own (never the shop's message log: `settings` are used with this
    one), so it is migrated on enter.
    """

    def __init__(
        self,
        settings: Settings,
        database_url: str | None = None,
        *,
        clock: SimClock | None = None,
        flows: FlowSet | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock if clock is not None else SimClock()
        self.api = FakeCloudAPI(self.clock)
        self._database_url = database_url
        self._flows = flows
        self._tempdir: str | None = None
        self._ids = itertools.count(1)
        self._templates: TemplateCatalog | None = None
        self.workers: Workers
        """The server's workers (bot/pipeline.py), set on enter."""
        self.content: ContentSource
        """The templates and texts the pipeline serves, set on enter."""
        self._run = secrets.token_hex(4)

    def _keys(self) -> None:
        """The shop's keys; a throwaway database without configured keys gets a throwaway key (no key
        file made beside the settings for a conversation that ends with the run)."""
        throwaway = self._tempdir is not None or is_memory(self._database_url or "")
        if throwaway and self.settings.secrets.encryption_keys is None:
            crypto.install(crypto.KeyRing(crypto.parse_master_keys(crypto.generate_master_key())))
        else:
            load_key_ring(self.settings)

    async def __aenter__(self) -> Simulator:
        if self._database_url is None:
            self._tempdir = tempfile.mkdtemp(prefix="bot-sim-")
            self._database_url = sqlite_url(Path(self._tempdir) / "sim.db")
        database = self.settings.database.model_copy(update={"url": self._database_url})
        self.settings = self.settings.model_copy(update={"database": database})  # the claims follow it
        pipeline = Pipeline(self.settings, clock=self.clock, flows=self._flows)  # may raise FlowLoadError
        await init_db(self._database_url, migrate_schema=True)
        self._keys()
        client = WhatsAppClient(self.api, self.settings.secrets.phone_number_id)  # no pacing: no real time
        self.workers = pipeline.workers(client)
        self.workers.intake.start()  # commits what `receive` hands it; the other loops never start
        self._templates = pipeline.engine.flows.templates
        self.content = pipeline.content
        for phone, last in (
            await Customer.exclude(last_inbound_at=None)
            .exclude(wa_id=None)
            .values_list("wa_id", "last_inbound_at")
        ):
            self.api.customer_wrote(phone, last)  # a database kept from an earlier run: its windows
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.workers.intake.stop()
        await close_db()
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)

    def customer(
        self, phone: str = DEFAULT_PHONE, name: str | None = None, language: str | None = None
    ) -> SimCustomer:
        return SimCustomer(self, phone.lstrip("+"), name, language)

    # --- the pipeline

    async def receive(self, phone: str, name: str | None, message: dict[str, Any]) -> list[Reply]:
        """One customer message (Meta's `messages[]` item without from/id/timestamp) through the bot."""
        sent_at = int(self.clock.now.timestamp())
        message = {
            "from": phone,
            "id": f"wamid.SIMIN.{self._run}.{next(self._ids)}",
            "timestamp": str(sent_at),
            **message,
        }
        raw = json.dumps(_envelope(phone, name, message, self.settings.secrets.phone_number_id))
        mark = await self.mark()
        await self.workers.intake.write(parse_notification(raw.encode()))  # as the webhook does
        self.api.customer_wrote(phone, datetime.fromtimestamp(sent_at, UTC))
        while await self.workers.inbox.process_batch():
            pass
        await self._send_due()
        return await self.replies_since(mark, phone)

    async def advance(self, delta: timedelta) -> list[Reply]:
        """Let time pass: fire the timers that came due, send what they queued; every customer's replies."""
        mark = await self.mark()
        self.clock.advance(delta)
        await self.catch_up()
        return await self.replies_since(mark)

    async def catch_up(self) -> None:
        """What the running workers would have done by now: due timers fired, queued replies sent."""
        workers = self.workers
        for _ in range(MAX_ROUNDS):
            moved = (
                await workers.inbox.fire_timers()
                + await workers.reminders.run_once()
                + sum(await workers.guards.run_once())
                + await workers.inbox.process_batch()
            )
            if not moved:
                break
        await self._send_due()

    async def _send_due(self) -> None:
        for _ in range(MAX_ROUNDS):
            started = await self.workers.outbox.dispatch()
            await self.workers.outbox.settle()
            if not started:
                return

    async def mark(self) -> tuple[int, list[int]]:
        """Where the log is now: the last row, and the replies still queued (they go out in the next step)."""
        queued = await Message.filter(
            message_direction=Direction.OUTBOUND, delivery_status=DeliveryStatus.QUEUED
        ).only("id")
        return await _last_id(), [row.id for row in queued]

    async def replies_since(self, mark: tuple[int, list[int]], phone: str | None = None) -> list[Reply]:
        """The outbound rows written, or still queued, since `mark`: what one step sent or refused."""
        last, queued = mark
        query = Message.filter(Q(id__gt=last) | Q(id__in=queued), message_direction=Direction.OUTBOUND)
        if phone is not None:
            query = query.filter(address=phone)
        return [_reply(row, self._templates) for row in await query.order_by("id")]

    async def last_sent(self, phone: str) -> list[Reply]:
        """This customer's delivered replies, newest first (a chat resumed from the database)."""
        rows = (
            await Message.filter(
                message_direction=Direction.OUTBOUND,
                address=phone,
                delivery_status=DeliveryStatus.SENT,
            )
            .order_by("-id")
            .limit(20)
        )
        return [_reply(row, self._templates) for row in rows]

    def new_media_id(self) -> str:
        """An id like the ones Meta gives inbound media (nothing is behind it here)."""
        return str(900000000000000 + next(self._ids))

    # --- customers

    async def set_language(self, phone: str, language: str) -> None:
        """The customer's language, as if they had chosen it (creates the customer when new)."""
        async with in_transaction():
            customer = await customer_for_phone(phone, self.clock.now)
            customer.language = language
            await customer.save(update_fields=["language", "updated_at"])

    async def forget(self, phone: str) -> None:
        """Everything about one customer: messages, conversation, timer. Their next message starts anew."""
        async with in_transaction():
            found = await customer_by_address(phone)
            customer_ids = [found.id] if found else []
            conversation_ids = await Conversation.filter(customer_id__in=list(customer_ids)).values_list(
                "id", flat=True
            )
            await ConversationTimer.filter(conversation_id__in=list(conversation_ids)).delete()
            for model in (AuditEvent, HandoffNote, Handoff):
                await model.filter(conversation_id__in=list(conversation_ids)).delete()
            await Conversation.filter(id__in=list(conversation_ids)).delete()
            await Customer.filter(id__in=list(customer_ids)).delete()
            await Message.filter(address=phone).delete()
        self.api.forget(phone)

    async def wipe(self, start: datetime | None = None) -> None:
        """An empty database and the clock at `start`: each flow test begins from nothing."""
        async with in_transaction():
            for model in (
                AuditEvent,
                HandoffNote,
                Handoff,
                ConversationTimer,
                Conversation,
                Customer,
                EarlyStatus,
                Message,
                OrderStatusChange,
                AppointmentChange,
                AppointmentReminder,
                AppointmentSeat,
                Appointment,
                Order,
            ):
                await model.all().delete()
        self.api.reset()
        self.clock.reset(start)


class SimCustomer:
    """One simulated customer: what they can do, and the choices the bot last offered them."""

    def __init__(self, simulator: Simulator, phone: str, name: str | None, language: str | None) -> None:
        self.simulator = simulator
        self.phone = phone
        self.name = name
        self.language = language
        self.choices: tuple[Choice, ...] = ()
        """The last delivered message's choices (empty when it offered none)."""
        self._tappable: tuple[Choice, ...] = ()
        self._tappable_wamid: str | None = None
        self._started = False

    async def start(self) -> list[Reply]:
        """Set the language of a new customer, pick up the choices of an earlier run; catch up on time."""
        self._started = True
        if self.language:
            await self.simulator.set_language(self.phone, self.language)
        for reply in reversed(await self.simulator.last_sent(self.phone)):
            self._note([reply])
        return await self.wait(timedelta(0))

    async def says(self, text: str) -> list[Reply]:
        return await self._send({"type": "text", "text": {"body": text}})

    async def taps(self, choice: str | int) -> list[Reply]:
        """Tap a button or list row of the latest message that offered some: by id, title or number."""
        found = self.find_choice(choice)
        kind = "list_reply" if found.row else "button_reply"
        reply: dict[str, Any] = {"id": found.id, "title": found.title}
        if found.row and found.description:
            reply["description"] = found.description
        message: dict[str, Any] = {"type": "interactive", "interactive": {"type": kind, kind: reply}}
        if self._tappable_wamid:
            message["context"] = {"from": BUSINESS_PHONE, "id": self._tappable_wamid}
        return await self._send(message)

    async def sends_media(
        self, kind: MediaKind, caption: str | None = None, filename: str | None = None
    ) -> list[Reply]:
        """A photo, video, document, audio, voice note, sticker or location, as WhatsApp delivers it."""
        media_id = self.simulator.new_media_id()
        if kind == "location":
            place = {"latitude": 40.4168, "longitude": -3.7038, **({"name": caption} if caption else {})}
            return await self._send({"type": "location", "location": place})
        obj: dict[str, Any] = {"mime_type": _MIME[kind], "sha256": "SIMULATED=", "id": media_id}
        if caption and kind in ("image", "video", "document"):
            obj["caption"] = caption
        if kind == "document":
            obj["filename"] = filename or "file.pdf"
        if kind == "voice":
            obj["voice"] = True
        if kind == "sticker":
            obj["animated"] = False
        message_type = "audio" if kind == "voice" else kind
        return await self._send({"type": message_type, message_type: obj})

    async def wait(self, delta: timedelta) -> list[Reply]:
        replies = [r for r in await self.simulator.advance(delta) if r.phone == self.phone]
        self._note(replies)
        return replies

    def find_choice(self, choice: str | int) -> Choice:
        options = self._tappable
        text = str(choice).strip()
        for option in options:
            if text == option.id:
                return option
        folded = text.casefold()
        for option in options:
            if folded == option.title.casefold():
                return option
        if text.isdigit() and 1 <= int(text) <= len(options):
            return options[int(text) - 1]
        offered = ", ".join(f"{i}) {c.title}" for i, c in enumerate(options, 1)) or "nothing to tap"
        raise ChoiceError(f'cannot tap "{text}": the bot offered {offered}')

    async def _send(self, message: dict[str, Any]) -> list[Reply]:
        if not self._started:
            await self.start()
        earlier = await self.wait(timedelta(0))  # timeouts due by now fire first, as they would have
        replies = await self.simulator.receive(self.phone, self.name, message)
        self._note(replies)
        return earlier + replies

    def _note(self, replies: list[Reply]) -> None:
        for reply in replies:
            if reply.delivered:
                self.choices = reply.choices
                if reply.choices:
                    self._tappable, self._tappable_wamid = reply.choices, reply.wamid


def _reply(row: Message, templates: TemplateCatalog | None) -> Reply:
    message = OUTBOUND_ADAPTER.validate_python(row.payload)
    buttons: tuple[str, ...] = ()
    found = templates.get(message.name) if templates is not None and isinstance(message, Template) else None
    if found is not None and isinstance(message, Template):
        language = pick_language(found.buttons, message.language)
        buttons = tuple(found.buttons[language]) if language is not None else ()
    return Reply(
        phone=row.address,
        message=message,
        status=str(row.delivery_status),
        wamid=row.whatsapp_message_id,
        error_code=row.error_code,
        error_title=row.error_title,
        template_buttons=buttons,
    )


async def _last_id() -> int:
    row = await Message.all().order_by("-id").first()
    return row.id if row else 0


def _envelope(phone: str, name: str | None, message: dict[str, Any], phone_number_id: str) -> dict[str, Any]:
    """Meta's webhook envelope, as in tests/payloads/inbound_text.json."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": BUSINESS_PHONE, "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": name} if name else {}, "wa_id": phone}],
        "messages": [message],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "200000000000001", "changes": [{"field": "messages", "value": value}]}],
    }
