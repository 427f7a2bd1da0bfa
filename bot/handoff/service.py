"""The handoff desk: opening, claiming, answering, passing on and releasing chats a person has.

Every change is one transaction (an `atomic()` block: called inside the inbox's batch, by the relay, it
is a savepoint of the batch), and its live events go out after that transaction commits. At most one
handoff per conversation is open (waiting or claimed): opening one locks the conversation row first
(`Claims.lock_conversation`: PostgreSQL; SQLite's write transactions are exclusive) and reuses an open
one. A claim is a single
conditional UPDATE ... WHERE status='waiting', so of two technicians racing for a chat exactly one wins
and the other gets a 409.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.clock import Clock, utc_now
from bot.db.claims import Claims, claims_for
from bot.db.models import (
    AuditEvent,
    AuditKind,
    Conversation,
    ConversationMode,
    Customer,
    DeliveryStatus,
    Direction,
    Handoff,
    HandoffNote,
    HandoffStatus,
    Message,
    Technician,
    TechnicianRole,
)
from bot.db.transactions import atomic, on_commit
from bot.engine import Engine
from bot.engine.content import ContentSource
from bot.engine.templates import TemplateCatalog
from bot.engine.texts import TextCatalog, pick_language
from bot.handoff.events import EventHub
from bot.handoff.texts import WorkingHours, wait_text
from bot.media.store import REF_PREFIX as MEDIA_REF_PREFIX
from bot.media.store import REFUSED_PREFIX as MEDIA_REFUSED_PREFIX
from bot.settings import Settings
from bot.spine.outbox import enqueue
from bot.whatsapp.outbound import Media, OutboundMessage, Template, Text

WINDOW = timedelta(hours=24)
OPEN = (HandoffStatus.WAITING, HandoffStatus.CLAIMED)
OUTSIDE_WINDOW = "outside the 24-hour window: only a template can be sent"
FAILED_LIMIT = 100
"""The most parked inbound messages `failed()` lists (the newest)."""


@dataclass
class DeskError(Exception):
    """An answer the API gives as `{"error": message, **extra}` with this HTTP status."""

    status: int
    message: str
    extra: dict[str, Any] = field(default_factory=dict)


def is_admin(technician: Technician) -> bool:
    return technician.role == TechnicianRole.ADMIN


async def open_handoff(
    claims: Claims,
    conversation_id: int,
    phone: str,
    reason: str,
    now: datetime,
    technician_id: int | None = None,
) -> tuple[Handoff, bool]:
    """Inside a transaction: the conversation's open handoff, opening one (mode HUMAN) if there is none.
    Returns it and whether it is new."""
    await claims.lock_conversation(conversation_id)
    existing = await Handoff.filter(conversation_id=conversation_id, status__in=list(OPEN)).first()
    if existing is not None:
        return existing, False
    await Conversation.filter(id=conversation_id).update(mode=ConversationMode.HUMAN)
    handoff = await Handoff.create(
        conversation_id=conversation_id,
        customer_phone=phone,
        status=HandoffStatus.WAITING,
        reason=reason,
        requested_at=now,
        last_activity_at=now,
    )
    await AuditEvent.create(
        kind=AuditKind.HANDOFF,
        technician_id=technician_id,
        conversation_id=conversation_id,
        details={"handoff_id": handoff.id, "reason": reason},
        at=now,
    )
    return handoff, True


def queue_event(action: str, handoff: Handoff, **extra: Any) -> dict[str, Any]:
    return {
        "type": "queue",
        "action": action,
        "phone": handoff.customer_phone,
        "conversation_id": handoff.conversation_id,
        "handoff_id": handoff.id,
        "technician_id": handoff.technician_id,
        "reason": handoff.reason,
        **extra,
    }


def history_item(row: Message) -> dict[str, Any]:
    """`file_url` of a kept file is where the panel fetches it with its token; a file not kept has
    none, and `file_note` says why."""
    file_url: str | None = row.file_url
    file_note: str | None = None
    if file_url and file_url.startswith(MEDIA_REF_PREFIX):
        file_url = f"/api/tech/media/{row.id}"
    elif file_url and file_url.startswith(MEDIA_REFUSED_PREFIX):
        file_note = file_url.removeprefix(MEDIA_REFUSED_PREFIX)
        file_url = None
    return {
        "kind": "message",
        "id": row.id,
        "direction": str(row.message_direction),
        "type": row.message_type,
        "content": row.message_content,
        "file_url": file_url,
        "file_name": row.file_name,
        "file_note": file_note,
        "status": str(row.delivery_status),
        "error": row.error_title,
        "error_code": row.error_code,
        "attempts": row.attempts,
        "technician_id": row.technician_id,
        "wamid": row.whatsapp_message_id,
        "at": (row.created_at or row.received_at or utc_now()).isoformat(),
    }


def note_item(note: HandoffNote) -> dict[str, Any]:
    return {
        "kind": "note",
        "id": note.id,
        "technician_id": note.technician_id,
        "content": note.text,
        "at": note.created_at.isoformat(),
    }


@dataclass
class Chat:
    """A conversation as the desk works with it."""

    conversation: Conversation
    customer: Customer
    handoff: Handoff | None


class HandoffDesk:
    def __init__(
        self,
        settings: Settings,
        content: ContentSource,
        events: EventHub | None = None,
        engine: Engine | None = None,
        clock: Clock = utc_now,
        on_queued: Callable[[], None] = lambda: None,
        claims: Claims | None = None,
    ) -> None:
        """`content`: the templates technicians may send and the texts of the wait (the served ones).
        `claims`: the database's (bot/db/claims.py), else chosen by settings' database URL."""
        self.settings = settings
        self.events = events if events is not None else EventHub()
        self.engine = engine
        self.claims = claims if claims is not None else claims_for(settings.database_url)
        self.hours = WorkingHours(settings)
        self._clock = clock
        self._on_queued = on_queued
        self._content = content

    @property
    def catalog(self) -> TemplateCatalog:
        return self._content().templates

    @property
    def texts(self) -> TextCatalog:
        return self._content().texts

    def approved_templates(self) -> list[str]:
        return [name for name in self.catalog if self.catalog.templates[name].status == "approved"]

    # --- entering

    async def request(
        self,
        conversation_id: int,
        phone: str,
        language: str | None,
        reason: str,
        now: datetime,
        texts: TextCatalog | None = None,
    ) -> str:
        """Inside the caller's transaction: hand the chat to a person; returns the wait text (`texts`:
        those of the engine run that asked, else the desk's)."""
        handoff, new = await open_handoff(self.claims, conversation_id, phone, reason, now)
        waiting = await Handoff.filter(status=HandoffStatus.WAITING).count()
        if new:  # goes out once the caller's transaction (the inbox's batch) commits
            self.events.publish(queue_event("waiting", handoff))
        settings = self.settings
        return wait_text(
            texts if texts is not None else self.texts,
            self.hours,
            now,
            waiting,
            settings.handoff.minutes_per_chat,
            language,
            settings.shop.default_language,
        )

    async def auto_handoff(
        self, conversation_id: int, phone: str, language: str, now: datetime
    ) -> list[OutboundMessage]:
        """The inbox's hook after too many misunderstandings in a row."""
        return [Text(body=await self.request(conversation_id, phone, language, "misunderstood", now))]

    # --- reading

    async def queue(self) -> list[dict[str, Any]]:
        now = self._clock()
        waiting = await Handoff.filter(status=HandoffStatus.WAITING).order_by("requested_at", "id")
        names = await _names([h.customer_phone for h in waiting])
        return [
            {
                "conversation_id": h.conversation_id,
                "handoff_id": h.id,
                "phone": h.customer_phone,
                "name": names.get(h.customer_phone),
                "waiting_seconds": max(0, int((now - h.requested_at).total_seconds())),
                "requested_at": h.requested_at.isoformat(),
                "reason": h.reason,
                "apologized": h.apologized_at is not None,
            }
            for h in waiting
        ]

    async def chats(self, technician: Technician) -> list[dict[str, Any]]:
        query = Handoff.filter(status=HandoffStatus.CLAIMED)
        if not is_admin(technician):
            query = query.filter(technician_id=technician.id)
        claimed = await query.order_by("claimed_at", "id")
        customers = {c.wa_id: c for c in await Customer.filter(wa_id__in=[h.customer_phone for h in claimed])}
        return [self._chat_info(h, customers.get(h.customer_phone)) for h in claimed]

    async def failed(self, technician: Technician) -> list[dict[str, Any]]:
        """Inbound messages the bot gave up on (parked by the inbox after their attempts, with the
        reason in `error`), newest first: for admins, who can open any chat."""
        if not is_admin(technician):
            raise DeskError(403, "only an admin can see the messages the bot could not handle")
        rows = (
            await Message.filter(message_direction=Direction.INBOUND, delivery_status=DeliveryStatus.FAILED)
            .order_by("-id")
            .limit(FAILED_LIMIT)
        )
        names = await _names(list({row.customer_phone for row in rows}))
        return [
            {**history_item(row), "phone": row.customer_phone, "name": names.get(row.customer_phone)}
            for row in rows
        ]

    def _chat_info(self, handoff: Handoff | None, customer: Customer | None) -> dict[str, Any]:
        now = self._clock()
        last = customer.last_inbound_at if customer else None
        closes = last + WINDOW if last else None
        window_open = closes is not None and closes > now
        return {
            "conversation_id": handoff.conversation_id if handoff else None,
            "handoff_id": handoff.id if handoff else None,
            "phone": customer.wa_id if customer else (handoff.customer_phone if handoff else None),
            "name": customer.profile_name if customer else None,
            "status": str(handoff.status) if handoff else None,
            "technician_id": handoff.technician_id if handoff else None,
            "reason": handoff.reason if handoff else None,
            "claimed_at": handoff.claimed_at.isoformat() if handoff and handoff.claimed_at else None,
            "last_activity_at": (
                handoff.last_activity_at.isoformat() if handoff and handoff.last_activity_at else None
            ),
            "window_open": window_open,
            "window_closes_at": closes.isoformat() if closes else None,
            "window_note": None if window_open else OUTSIDE_WINDOW,
            "templates": self.approved_templates(),
        }

    async def chat(self, phone: str) -> Chat:
        customer = await Customer.get_or_none(wa_id=phone)
        conversation = await Conversation.get_or_none(customer_id=customer.id) if customer else None
        if customer is None or conversation is None:
            raise DeskError(404, "no chat with this phone number")
        handoff = await Handoff.filter(conversation_id=conversation.id, status__in=list(OPEN)).first()
        return Chat(conversation, customer, handoff)

    async def visible_message(self, technician: Technician, message_id: int) -> Message:
        """A message of a chat this technician may open (its media: GET /api/tech/media/{id})."""
        row = await Message.get_or_none(id=message_id)
        if row is None:
            raise DeskError(404, "no such message")
        self._may_see(technician, await self.chat(row.customer_phone))
        return row

    def _may_see(self, technician: Technician, chat: Chat) -> None:
        if is_admin(technician):
            return
        handoff = chat.handoff
        if handoff is None:
            raise DeskError(403, "this chat is with the bot; only an admin can open it")
        if handoff.status == HandoffStatus.CLAIMED and handoff.technician_id != technician.id:
            raise DeskError(403, "another technician has this chat")

    def _must_own(self, technician: Technician, chat: Chat, *, admin_too: bool = False) -> Handoff:
        handoff = chat.handoff
        if handoff is None or handoff.status != HandoffStatus.CLAIMED:
            raise DeskError(409, "claim this chat first")
        if handoff.technician_id == technician.id or (admin_too and is_admin(technician)):
            return handoff
        raise DeskError(403, "another technician has this chat")

    async def history(self, technician: Technician, phone: str) -> dict[str, Any]:
        chat = await self.chat(phone)
        self._may_see(technician, chat)
        rows = await Message.filter(customer_phone=phone).order_by("id")
        notes = await HandoffNote.filter(conversation_id=chat.conversation.id).order_by("id")
        items = [history_item(row) for row in rows] + [note_item(note) for note in notes]
        items.sort(key=lambda item: item["at"])
        return {**self._chat_info(chat.handoff, chat.customer), "messages": items}

    # --- taking and giving back

    async def claim(self, technician: Technician, phone: str) -> dict[str, Any]:
        now = self._clock()
        async with atomic():
            chat = await self.chat(phone)
            handoff = chat.handoff
            if handoff is None:  # a technician takes over a chat the bot has
                handoff, _ = await open_handoff(
                    self.claims, chat.conversation.id, phone, "taken over", now, technician_id=technician.id
                )
            won = await Handoff.filter(id=handoff.id, status=HandoffStatus.WAITING).update(
                status=HandoffStatus.CLAIMED,
                technician_id=technician.id,
                claimed_at=now,
                last_activity_at=now,
            )
            handoff = await Handoff.get(id=handoff.id)
            if not won:
                if handoff.status == HandoffStatus.CLAIMED and handoff.technician_id == technician.id:
                    return self._chat_info(handoff, chat.customer)  # claimed twice by the same person
                raise DeskError(
                    409, "another technician has claimed this chat", {"technician_id": handoff.technician_id}
                )
            await AuditEvent.create(
                kind=AuditKind.CLAIM,
                technician_id=technician.id,
                conversation_id=handoff.conversation_id,
                details={"handoff_id": handoff.id},
                at=now,
            )
            self.events.publish(queue_event("claimed", handoff))
        return self._chat_info(handoff, chat.customer)

    async def transfer(self, technician: Technician, phone: str, to_id: int) -> dict[str, Any]:
        now = self._clock()
        target = await Technician.get_or_none(id=to_id, active=True)
        if target is None:
            raise DeskError(422, "no active technician with this id")
        async with atomic():
            chat = await self.chat(phone)
            handoff = self._must_own(technician, chat, admin_too=True)
            moved = await Handoff.filter(
                id=handoff.id, status=HandoffStatus.CLAIMED, technician_id=handoff.technician_id
            ).update(technician_id=target.id, last_activity_at=now)
            if not moved:
                raise DeskError(409, "this chat changed hands meanwhile; reload it")
            await AuditEvent.create(
                kind=AuditKind.TRANSFER,
                technician_id=technician.id,
                conversation_id=handoff.conversation_id,
                details={"handoff_id": handoff.id, "from": handoff.technician_id, "to": target.id},
                at=now,
            )
            handoff = await Handoff.get(id=handoff.id)
            self.events.publish(queue_event("transferred", handoff, from_technician_id=technician.id))
        return self._chat_info(handoff, chat.customer)

    def _target(
        self, conversation: Conversation, flow: str | None, state: str | None
    ) -> tuple[str, str] | None:
        """Where a released conversation goes: (flow, state), None to stay; DeskError when invalid."""
        if flow is None and state is None:
            return None
        if self.engine is None:
            raise DeskError(422, "flows are not loaded here")
        flows = self.engine.flows
        flow = flow or conversation.flow or self.engine.default_flow
        if flow not in flows.flows:
            raise DeskError(422, f"there is no flow '{flow}'")
        state = state or flows.flows[flow].start
        if not flows.has_state(flow, state):
            raise DeskError(422, f"there is no state '{state}' in flow '{flow}'")
        return flow, state

    async def release(
        self,
        technician: Technician | None,
        phone: str,
        flow: str | None = None,
        state: str | None = None,
    ) -> dict[str, Any]:
        """Back to the bot (the owner, or an admin); the bot answers the customer's next message."""
        now = self._clock()
        async with atomic():
            chat = await self.chat(phone)
            if technician is not None:
                handoff = self._must_own(technician, chat, admin_too=True)
            elif chat.handoff is None:
                raise DeskError(409, "this chat is not with a person")
            else:
                handoff = chat.handoff
            target = self._target(chat.conversation, flow, state)
            await self._give_back(chat.conversation, handoff, now, target)
            await AuditEvent.create(
                kind=AuditKind.RELEASE,
                technician_id=technician.id if technician else None,
                conversation_id=handoff.conversation_id,
                details={
                    "handoff_id": handoff.id,
                    "flow": target[0] if target else None,
                    "state": target[1] if target else None,
                },
                at=now,
            )
            handoff = await Handoff.get(id=handoff.id)
            self.events.publish(queue_event("released", handoff))
        return self._chat_info(None, chat.customer)

    @staticmethod
    async def _give_back(
        conversation: Conversation, handoff: Handoff, now: datetime, target: tuple[str, str] | None = None
    ) -> None:
        """Inside a transaction: close the handoff and hand the conversation to the bot."""
        await Handoff.filter(id=handoff.id).update(status=HandoffStatus.RELEASED, released_at=now)
        changes: dict[str, Any] = {"mode": ConversationMode.BOT}
        if target is not None:
            variables = {k: v for k, v in (conversation.variables or {}).items() if not k.startswith("_")}
            changes.update(flow=target[0], state=target[1], variables=variables)
        await Conversation.filter(id=conversation.id).update(**changes)

    # --- writing

    async def note(self, technician: Technician, phone: str, text: str) -> dict[str, Any]:
        now = self._clock()
        chat = await self.chat(phone)
        self._may_see(technician, chat)
        note = await HandoffNote.create(
            handoff_id=chat.handoff.id if chat.handoff else None,
            conversation_id=chat.conversation.id,
            technician_id=technician.id,
            text=text,
            created_at=now,
        )
        return note_item(note)

    async def send(self, technician: Technician, phone: str, message: OutboundMessage) -> dict[str, Any]:
        """Queue a technician's message (free-form only inside the 24-hour window)."""
        now = self._clock()
        async with atomic():
            chat = await self.chat(phone)
            handoff = self._must_own(technician, chat)
            if not isinstance(message, Template):
                self.check_window(chat.customer, now)
            row = await enqueue(phone, message, now=now, technician_id=technician.id)
            await Handoff.filter(id=handoff.id).update(last_activity_at=now)
            item = history_item(row)
            self.events.publish(
                {"type": "message", "phone": phone, "conversation_id": chat.conversation.id, "message": item}
            )
            on_commit(self._on_queued)
        return item

    def check_window(self, customer: Customer, now: datetime) -> None:
        last = customer.last_inbound_at
        if last is None or now - last >= WINDOW:
            raise DeskError(409, OUTSIDE_WINDOW, {"templates": self.approved_templates()})

    async def owned_chat(self, technician: Technician, phone: str, *, free_form: bool) -> Chat:
        """The chat `technician` has (for a media upload before its message is queued)."""
        chat = await self.chat(phone)
        self._must_own(technician, chat)
        if free_form:
            self.check_window(chat.customer, self._clock())
        return chat

    def template(self, customer: Customer, name: str, params: list[str]) -> Template:
        spec = self.catalog.get(name)
        if spec is None or spec.status != "approved":
            raise DeskError(
                422, f"there is no approved template '{name}'", {"templates": self.approved_templates()}
            )
        if len(params) != spec.parameters:
            raise DeskError(422, f"template '{name}' takes {spec.parameters} parameter(s), not {len(params)}")
        language = pick_language(spec.languages, customer.language, self.settings.shop.default_language)
        assert language is not None  # a template file has at least one language
        return Template(name=name, language=language, body_params=tuple(params))

    @staticmethod
    def media(media_id: str, mime_type: str, filename: str, caption: str | None) -> Media:
        if mime_type.startswith("image/"):
            return Media(media_type="image", media_id=media_id, caption=caption or None)
        return Media(media_type="document", media_id=media_id, filename=filename, caption=caption or None)


async def _names(phones: list[str]) -> dict[str, str | None]:
    return dict(await Customer.filter(wa_id__in=phones).values_list("wa_id", "profile_name"))  # type: ignore[arg-type]
