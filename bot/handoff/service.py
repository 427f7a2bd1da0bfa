"""The handoff desk: opening, claiming, answering, passing on and releasing chats a person has.

Every change is one transaction (an `atomic()` block: called inside the inbox's batch, by the relay, it
is a savepoint of the batch), and its live events go out after that transaction commits. At most one
handoff per conversation is open (waiting or claimed): opening one locks the conversation row first
(`Claims.lock_conversation`: PostgreSQL; SQLite's write transactions are exclusive) and reuses an open
one. A claim is a single
conditional UPDATE ... WHERE status='waiting', so of two technicians racing for a chat exactly one wins
and the other gets a 409.

A chat is its customer's: the desk finds it by the customer's id, or by any phone or BSUID of theirs
(`ChatKey`), so a customer without a phone number is handled like any other.
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
from bot.db.writes import update_rows
from bot.engine import Engine
from bot.engine.content import ContentSource
from bot.engine.templates import TemplateCatalog
from bot.engine.texts import TextCatalog, pick_language
from bot.handoff.events import EventHub
from bot.handoff.texts import WorkingHours, wait_text
from bot.identity import customer_by_address
from bot.media.store import REF_PREFIX as MEDIA_REF_PREFIX
from bot.media.store import REFUSED_PREFIX as MEDIA_REFUSED_PREFIX
from bot.settings import Settings
from bot.spine.outbox import enqueue
from bot.spine.outbox.consent import CustomerState, template_refusal
from bot.whatsapp.outbound import Media, OutboundMessage, Template, Text

WINDOW = timedelta(hours=24)
OPEN = (HandoffStatus.WAITING, HandoffStatus.CLAIMED)
OUTSIDE_WINDOW = "outside the 24-hour window: only a template can be sent"
FAILED_LIMIT = 100
"""The most parked inbound messages `failed()` lists (the newest)."""

ChatKey = int | str
"""A customer id, or one of their addresses (a phone or a BSUID)."""


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


def who(customer: Customer | None) -> dict[str, Any]:
    """How events and answers name a customer: id, phone (None without one), address, names."""
    if customer is None:
        return {"customer_id": None, "phone": None, "address": None, "name": None, "display_name": None}
    return {
        "customer_id": customer.id,
        "phone": customer.wa_id,
        "address": customer.wa_id or customer.bsuid,
        "name": customer.profile_name or customer.username,
        "display_name": customer.display_name,
    }


def consent_of(customer: Customer | None) -> dict[str, str | None]:
    """Since when the customer opted out of what the shop starts, and of marketing (None: in)."""
    out = customer.opted_out_at if customer else None
    marketing = customer.marketing_opted_out_at if customer else None
    return {
        "opted_out_at": out.isoformat() if out else None,
        "marketing_opted_out_at": marketing.isoformat() if marketing else None,
    }


def queue_event(action: str, handoff: Handoff, customer: Customer | None, **extra: Any) -> dict[str, Any]:
    return {
        "type": "queue",
        "action": action,
        **who(customer),
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
        customer: Customer,
        language: str | None,
        reason: str,
        now: datetime,
        texts: TextCatalog | None = None,
    ) -> str:
        """Inside the caller's transaction: hand the chat to a person; returns the wait text (`texts`:
        those of the engine run that asked, else the desk's)."""
        handoff, new = await open_handoff(self.claims, conversation_id, reason, now)
        waiting = await Handoff.filter(status=HandoffStatus.WAITING).count()
        if new:  # goes out once the caller's transaction (the inbox's batch) commits
            self.events.publish(queue_event("waiting", handoff, customer))
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
        self, conversation_id: int, customer: Customer, language: str, now: datetime
    ) -> list[OutboundMessage]:
        """The inbox's hook after too many misunderstandings in a row."""
        return [Text(body=await self.request(conversation_id, customer, language, "misunderstood", now))]

    # --- reading

    async def queue(self) -> list[dict[str, Any]]:
        now = self._clock()
        waiting = await Handoff.filter(status=HandoffStatus.WAITING).order_by("requested_at", "id")
        customers = await _customers_of(waiting)
        return [
            {
                "conversation_id": h.conversation_id,
                "handoff_id": h.id,
                **who(customers.get(h.conversation_id)),
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
        customers = await _customers_of(claimed)
        return [self._chat_info(h, customers.get(h.conversation_id)) for h in claimed]

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
        customers = {
            c.id: c
            for c in await Customer.filter(id__in={row.customer_id for row in rows if row.customer_id})
        }
        return [{**history_item(row), **who(customers.get(row.customer_id or 0))} for row in rows]

    def _chat_info(self, handoff: Handoff | None, customer: Customer | None) -> dict[str, Any]:
        now = self._clock()
        last = customer.last_inbound_at if customer else None
        closes = last + WINDOW if last else None
        window_open = closes is not None and closes > now
        return {
            "conversation_id": handoff.conversation_id if handoff else None,
            "handoff_id": handoff.id if handoff else None,
            **who(customer),
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
            **consent_of(customer),
        }

    async def chat(self, key: ChatKey) -> Chat:
        """The chat of a customer id, or of a phone or BSUID of theirs."""
        if isinstance(key, int):
            customer = await Customer.get_or_none(id=key)
        else:
            customer = await customer_by_address(key)
        conversation = await Conversation.get_or_none(customer_id=customer.id) if customer else None
        if customer is None or conversation is None:
            what = (
                "customer" if isinstance(key, int) else "phone number" if key.lstrip("+").isdigit() else "id"
            )
            raise DeskError(404, f"no chat with this {what}")
        handoff = await Handoff.filter(conversation_id=conversation.id, status__in=list(OPEN)).first()
        return Chat(conversation, customer, handoff)

    async def visible_message(self, technician: Technician, message_id: int) -> Message:
        """A message of a chat this technician may open (its media: GET /api/tech/media/{id})."""
        row = await Message.get_or_none(id=message_id)
        if row is None:
            raise DeskError(404, "no such message")
        self._may_see(
            technician, await self.chat(row.customer_id if row.customer_id is not None else row.address)
        )
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

    async def history(self, technician: Technician, key: ChatKey) -> dict[str, Any]:
        chat = await self.chat(key)
        self._may_see(technician, chat)
        rows = await Message.filter(customer_id=chat.customer.id).order_by("id")
        notes = await HandoffNote.filter(conversation_id=chat.conversation.id).order_by("id")
        items = [history_item(row) for row in rows] + [note_item(note) for note in notes]
        items.sort(key=lambda item: item["at"])
        return {**self._chat_info(chat.handoff, chat.customer), "messages": items}

    # --- taking and giving back

    async def claim(self, technician: Technician, key: ChatKey) -> dict[str, Any]:
        now = self._clock()
        async with atomic():
            chat = await self.chat(key)
            handoff = chat.handoff
            if handoff is None:  # a technician takes over a chat the bot has
                handoff, _ = await open_handoff(
                    self.claims, chat.conversation.id, "taken over", now, technician_id=technician.id
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
            self.events.publish(queue_event("claimed", handoff, chat.customer))
        return self._chat_info(handoff, chat.customer)

    async def transfer(self, technician: Technician, key: ChatKey, to_id: int) -> dict[str, Any]:
        now = self._clock()
        target = await Technician.get_or_none(id=to_id, active=True)
        if target is None:
            raise DeskError(422, "no active technician with this id")
        async with atomic():
            chat = await self.chat(key)
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
            self.events.publish(
                queue_event("transferred", handoff, chat.customer, from_technician_id=technician.id)
            )
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
        key: ChatKey,
        flow: str | None = None,
        state: str | None = None,
    ) -> dict[str, Any]:
        """Back to the bot (the owner, or an admin); the bot answers the customer's next message."""
        now = self._clock()
        async with atomic():
            chat = await self.chat(key)
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
            self.events.publish(queue_event("released", handoff, chat.customer))
        return self._chat_info(None, chat.customer)

    @staticmethod
    async def _give_back(
        conversation: Conversation, handoff: Handoff, now: datetime, target: tuple[str, str] | None = None
    ) -> None:
        """Inside a transaction: close the handoff and hand the conversation to the bot."""
        await Handoff.filter(id=handoff.id).update(status=HandoffStatus.RELEASED, released_at=now)
        changes: dict[str, Any] = {"mode": ConversationMode.BOT}
        if target is not None:
            changes.update(flow=target[0], state=target[1])
        await Conversation.filter(id=conversation.id).update(**changes)
        if target is not None:  # encrypted for its customer: written from the row, not a bare UPDATE
            conversation.variables = {
                k: v for k, v in (conversation.variables or {}).items() if not k.startswith("_")
            }
            await update_rows(Conversation, [conversation], ["variables"])

    # --- writing

    async def note(self, technician: Technician, key: ChatKey, text: str) -> dict[str, Any]:
        now = self._clock()
        chat = await self.chat(key)
        self._may_see(technician, chat)
        note = await HandoffNote.create(
            handoff_id=chat.handoff.id if chat.handoff else None,
            conversation_id=chat.conversation.id,
            customer_id=chat.conversation.customer_id,
            technician_id=technician.id,
            text=text,
            created_at=now,
        )
        return note_item(note)

    async def send(self, technician: Technician, key: ChatKey, message: OutboundMessage) -> dict[str, Any]:
        """Queue a technician's message (free-form only inside the 24-hour window)."""
        now = self._clock()
        async with atomic():
            chat = await self.chat(key)
            handoff = self._must_own(technician, chat)
            if not isinstance(message, Template):
                self.check_window(chat.customer, now)
            else:
                self.check_consent(chat.customer, message, now)
            row = await enqueue(chat.customer, message, now=now, technician_id=technician.id)
            await Handoff.filter(id=handoff.id).update(last_activity_at=now)
            item = history_item(row)
            self.events.publish(
                {
                    "type": "message",
                    **who(chat.customer),
                    "conversation_id": chat.conversation.id,
                    "message": item,
                }
            )
            on_commit(self._on_queued)
        return item

    def check_consent(self, customer: Customer, template: Template, now: datetime) -> None:
        """A template the customer said no to (a stop word, or marketing stopped) is refused here with
        the outbox's own reason (bot/spine/outbox/consent.py), not queued to fail there."""
        state = CustomerState(
            customer.last_inbound_at, customer.opted_out_at, customer.marketing_opted_out_at
        )
        refused = template_refusal(template.name, state, now, self._category_of)
        if refused is not None:
            raise DeskError(409, refused[1], {"error_code": refused[0]})

    def _category_of(self, name: str) -> str | None:
        found = self.catalog.get(name)
        return found.category if found is not None else None

    def check_window(self, customer: Customer, now: datetime) -> None:
        last = customer.last_inbound_at
        if last is None or now - last >= WINDOW:
            raise DeskError(409, OUTSIDE_WINDOW, {"templates": self.approved_templates()})

    async def owned_chat(self, technician: Technician, key: ChatKey, *, free_form: bool) -> Chat:
        """The chat `technician` has (for a media upload before its message is queued)."""
        chat = await self.chat(key)
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


async def _customers_of(handoffs: list[Handoff]) -> dict[int, Customer]:
    """Conversation id -> its customer, for these handoffs."""
    conversations = await Conversation.filter(id__in={h.conversation_id for h in handoffs}).prefetch_related(
        "customer"
    )
    return {c.id: c.customer for c in conversations}


async def customer_of(handoff: Handoff) -> Customer | None:
    return (await _customers_of([handoff])).get(handoff.conversation_id)
