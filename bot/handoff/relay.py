"""Handed-off chats relayed to the technician's own WhatsApp (`handoff.relay_to_whatsapp: true`).

For a shop with no one watching the panel. A message from an active technician's phone (Technician.phone,
digits as WhatsApp's wa_id) is the technician's, never a customer's: it never reaches the engine and
opens no conversation. It is a command (`list`, `claim [N]`, `switch N`, `release`, `help`; Spanish
words too) or a reply to the technician's current chat, queued to the customer from the business number
with the technician's id, through the same HandoffDesk as the panel: one owner per chat, the same audit
log, the customer's 24-hour window. A reply may be text or a file (a photo, a video, a voice note, a
document, a sticker): the file is queued by its received id, and the outbox sends a copy of it (the
client downloads it from the Cloud API and uploads it again, bot/whatsapp/client.py).

The other way: a new waiting chat is announced to every active technician with a phone, and a customer's
message in a claimed chat goes to its owner as "[name · +phone · order N] text". A technician whose own
window is closed (no message from them to the business number for 24 hours: their customer row's
`last_inbound_at`, as anyone's) gets the approved `technician_relay` template instead of free text. Chats
are their customers' (ids), so a customer without a phone is relayed like any other, under their name.

Every row of the relay that carries or answers a customer's chat (the copy sent to the technician, the
technician's reply to their current chat, a notice naming one customer) has that customer's id in
`Message.about_customer_id`, so erasing or exporting the customer finds it (bot/privacy); a `list`
answer names several and is linked to none.

Everything runs inside the inbox's batch transaction (the inbox asks `technicians()` before the engine),
so each message is handled exactly once with what it caused. What the commands point at (which of
several chats plain replies go to, `switch N`; what `claim N` means after a `list`; the chat last
announced) is kept in the database by customer id (bot/handoff/pointers.py), so a restart changes none
of it; with no pointer, replies go to the technician's most recently claimed chat.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, cast

from bot.clock import utc_now
from bot.db.models import (
    Customer,
    Handoff,
    HandoffStatus,
    Message,
    Technician,
)
from bot.engine.texts import pick_language
from bot.handoff.pointers import RelayPointers
from bot.handoff.service import OPEN, WINDOW, DeskError, HandoffDesk
from bot.identity import customer_for_phone
from bot.orders.owner import orders_of
from bot.spine.outbox import outbound_row
from bot.whatsapp.notifications import MEDIA_KINDS, InboundMessage
from bot.whatsapp.outbound import (
    CAPTION_MAX,
    FILENAME_MAX,
    Media,
    MediaKind,
    OutboundMessage,
    Template,
    Text,
    clip,
)

TEMPLATE = "technician_relay"
CLOSED_ORDER_STATUSES = frozenset({"picked_up", "cancelled"})
PARAM_MAX = 900

HELP = (
    "Commands: list (waiting chats and yours) · claim [N] (take waiting chat N, or the first) · "
    "switch N (which of your chats your replies go to) · release (give the current chat back to the bot)"
    " · help. Anything else is sent to your current customer."
)
OUTSIDE = "Outside the customer's 24-hour window: only a template can be sent — use the panel."
NO_CHAT = "You have no chat right now. Send 'list' to see who is waiting, or 'claim' to take the first."
NOT_RELAYED = (
    "Only text, photos, videos, voice notes, documents and stickers reach your customer; "
    "send anything else from the panel."
)

COMMANDS: dict[str, str] = {
    "list": "list",
    "lista": "list",
    "ls": "list",
    "claim": "claim",
    "take": "claim",
    "tomar": "claim",
    "atender": "claim",
    "switch": "switch",
    "cambiar": "switch",
    "release": "release",
    "soltar": "release",
    "liberar": "release",
    "help": "help",
    "ayuda": "help",
    "?": "help",
}
COMMAND = re.compile(r"^\s*(\S+)(?:\s+#?(\d+))?\s*$")

Answer = tuple[str | None, int | None]
"""What to tell the technician (None: nothing), and the customer it is about (None: no one)."""


def digits(phone: str | None) -> str:
    return "".join(ch for ch in phone or "" if ch.isdigit())


def minutes_since(then: datetime, now: datetime) -> str:
    minutes = max(0, int((now - then).total_seconds() // 60))
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


class Relay:
    def __init__(self, desk: HandoffDesk, clock: Callable[[], datetime] | None = None) -> None:
        self.desk = desk
        self._clock = clock or utc_now
        self.pointers = RelayPointers()
        """Technician -> what their commands point at (customer ids), in the database."""

    # --- asked by the inbox

    async def technicians(self, addresses: Iterable[str]) -> dict[str, Technician]:
        """The active technicians among these senders, by wa_id."""
        wanted = set(addresses)
        found: dict[str, Technician] = {}
        for technician in await Technician.filter(active=True, phone__isnull=False):
            wa_id = digits(technician.phone)
            if wa_id in wanted:
                found[wa_id] = technician
        return found

    async def technician_message(self, technician: Technician, row: Message, now: datetime) -> list[Message]:
        """Inside the batch: a command or a reply from `technician`; returns what to queue to them."""
        text = (row.message_content or "").strip()
        match = COMMAND.match(text)
        command = COMMANDS.get(match.group(1).lower()) if match else None
        number = int(match.group(2)) if match and match.group(2) else None
        if command is not None and (number is None or command in ("claim", "switch")):
            answer, about = await self._command(technician, command, number, now)
        else:
            answer, about = await self._reply(technician, row, text)
        if not answer:
            return []
        return [await self._to_technician(technician, Text(body=answer), now, about)]

    async def customer_message(self, customer: Customer, row: Message, now: datetime) -> list[Message]:
        """Inside the batch: a customer wrote in a chat a person has; relay it to the owner, if any."""
        handoff = await Handoff.filter(
            conversation__customer_id=customer.id, status=HandoffStatus.CLAIMED, technician_id__isnull=False
        ).first()
        if handoff is None:
            return []
        technician = await Technician.get_or_none(id=handoff.technician_id, active=True)
        if technician is None or not digits(technician.phone):
            return []
        who, where = await self._label(customer)
        body = row.message_content or f"[{row.message_type}]"
        return [await self._relayed(technician, customer.id, who, where, body, now)]

    async def handed_off(self, customer: Customer, row: Message, now: datetime) -> list[Message]:
        """Inside the batch: the chat now waits for a person; tell every active technician with a phone."""
        who, where = await self._label(customer)
        body = row.message_content or f"[{row.message_type}]"
        rows = []
        for technician in await Technician.filter(active=True, phone__isnull=False).order_by("id"):
            if digits(technician.phone):
                await self.pointers.point(technician.id, offered=customer.id)
                rows.append(await self._relayed(technician, customer.id, who, where, body, now, waiting=True))
        return rows

    # --- commands

    async def _command(
        self, technician: Technician, command: str, number: int | None, now: datetime
    ) -> Answer:
        if command == "help":
            return HELP, None
        if command == "list":
            return await self._list(technician, now), None  # names several customers: linked to none
        if command == "claim":
            return await self._claim_command(technician, number)
        if command == "switch":
            mine = await self._mine(technician)
            if not mine:
                return NO_CHAT, None
            if number is None or not 0 < number <= len(mine):
                return f"Give the number of one of your chats (1-{len(mine)}); send 'list'.", None
            customer_id = mine[number - 1].conversation.customer_id
            await self.pointers.point(technician.id, current=customer_id)
            who, where = await self._label_for(customer_id)
            return f"Your replies now go to {who} ({where}).", customer_id
        return await self._release(technician)

    async def _release(self, technician: Technician) -> Answer:
        handoff = await self._current_chat(technician)
        if handoff is None:
            return NO_CHAT, None
        customer_id = handoff.conversation.customer_id
        try:
            await self.desk.release(technician, customer_id)
        except DeskError as exc:
            return await self._explain(exc), customer_id
        await self.pointers.point(technician.id, current=None)
        who, _ = await self._label_for(customer_id)
        rest = await self._mine(technician)
        after = f" You still have {len(rest)} chat(s); send 'list'." if rest else ""
        return f"Released {who}: the bot answers them again.{after}", customer_id

    async def _claim_command(self, technician: Technician, number: int | None) -> Answer:
        """`claim N`: chat N of the technician's last `list`; `claim`: the first waiting, or else the one
        last announced to them (so a late claim hears who was faster)."""
        customer_id: int | None
        pointer = await self.pointers.get(technician.id)
        if number is not None:
            listed = pointer.listed
            if listed is None:
                listed = tuple(handoff.conversation.customer_id for handoff in await self._waiting())
            if not 0 < number <= len(listed):
                return f"There is no waiting chat {number}; send 'list'.", None
            customer_id = listed[number - 1]
        else:
            waiting = await self._waiting()
            customer_id = waiting[0].conversation.customer_id if waiting else pointer.offered
            if customer_id is None:
                return "Nobody is waiting.", None
        if not await Handoff.filter(conversation__customer_id=customer_id, status__in=list(OPEN)).exists():
            who, _ = await self._label_for(customer_id)
            return f"{who} is with the bot again; nobody is waiting there. Send 'list'.", customer_id
        return await self._claim(technician, customer_id)

    async def _claim(self, technician: Technician, customer_id: int) -> Answer:
        customer = await Customer.get(id=customer_id)
        try:
            await self.desk.claim(technician, customer.id)
        except DeskError as exc:
            return await self._explain(exc), customer_id
        await self.pointers.point(technician.id, current=customer_id)
        who, where = await self._label(customer)
        text = f"You have {who} ({where}) now. Your replies go to them; 'release' gives them back to the bot."
        return text, customer_id

    async def _list(self, technician: Technician, now: datetime) -> str:
        waiting = await self._waiting()
        mine = await self._mine(technician)
        current = await self._current_chat(technician)
        listed = [handoff.conversation.customer_id for handoff in waiting]
        await self.pointers.point(technician.id, listed=listed)
        lines = ["Waiting:" if waiting else "Nobody is waiting."]
        for n, handoff in enumerate(waiting, 1):
            who, where = await self._label_for(handoff.conversation.customer_id)
            lines.append(f"{n}. {who} ({where}), waiting {minutes_since(handoff.requested_at, now)}")
        lines.append("Yours:" if mine else "You have no chat.")
        for n, handoff in enumerate(mine, 1):
            who, where = await self._label_for(handoff.conversation.customer_id)
            mark = " ← replies go here" if current is not None and current.id == handoff.id else ""
            lines.append(f"{n}. {who} ({where}){mark}")
        return "\n".join(lines)

    async def _reply(self, technician: Technician, row: Message, text: str) -> Answer:
        handoff = await self._current_chat(technician)
        if handoff is None:
            return NO_CHAT, None
        customer_id = handoff.conversation.customer_id
        await about(row, customer_id)  # what they wrote is for that customer, sent or not
        message: OutboundMessage | None = relayed_file(row)
        if message is None and row.message_type == "text" and text:
            message = Text(body=text[:4096])
        if message is None:
            return NOT_RELAYED, customer_id
        try:
            await self.desk.send(technician, customer_id, message)
        except DeskError as exc:
            return await self._explain(exc), customer_id
        return None, customer_id  # sent: no answer needed

    async def _explain(self, exc: DeskError) -> str:
        if exc.message == "outside the 24-hour window: only a template can be sent":
            return OUTSIDE
        owner_id = exc.extra.get("technician_id")
        if owner_id is not None:
            owner = await Technician.get_or_none(id=owner_id)
            return f"{owner.name if owner else 'Another technician'} has this chat already."
        return exc.message[:1].upper() + exc.message[1:] + "."

    # --- reading

    async def _waiting(self) -> list[Handoff]:
        return (
            await Handoff.filter(status=HandoffStatus.WAITING)
            .order_by("requested_at", "id")
            .prefetch_related("conversation")
        )

    async def _mine(self, technician: Technician) -> list[Handoff]:
        """The technician's chats, numbered from 1 by when they claimed them (what `switch N` means)."""
        return (
            await Handoff.filter(status=HandoffStatus.CLAIMED, technician_id=technician.id)
            .order_by("claimed_at", "id")
            .prefetch_related("conversation")
        )

    async def _current_chat(self, technician: Technician) -> Handoff | None:
        mine = await self._mine(technician)
        chosen = (await self.pointers.get(technician.id)).current
        for handoff in mine:
            if handoff.conversation.customer_id == chosen:
                return handoff
        return mine[-1] if mine else None  # the latest claimed

    async def _label_for(self, customer_id: int) -> tuple[str, str]:
        customer = await Customer.get_or_none(id=customer_id)
        return await self._label(customer) if customer else ("a customer", "gone")

    async def _label(self, customer: Customer) -> tuple[str, str]:
        """(who, where): the customer's name, and "+phone · order N" with their latest open order (no
        phone: their username or BSUID)."""
        order = (
            await orders_of(customer.id, customer.wa_id)
            .exclude(status__in=list(CLOSED_ORDER_STATUSES))
            .order_by("-updated_at", "-id")
            .first()
        )
        reach = f"+{customer.wa_id}" if customer.wa_id else (customer.username or customer.bsuid or "-")
        where = reach + (f" · order {order.order_number}" if order else "")
        return customer.display_name, where

    # --- writing to the technician

    async def _relayed(
        self,
        technician: Technician,
        customer_id: int,
        who: str,
        where: str,
        body: str,
        now: datetime,
        *,
        waiting: bool = False,
    ) -> Message:
        message: OutboundMessage
        if await self._window_open(technician, now):
            if waiting:
                text = f"[{who} · {where}] is waiting for a person: {body}\nSend 'claim' to take it, 'list'."
            else:
                text = f"[{who} · {where}] {body}"
            message = Text(body=text[:4096])
        else:
            message = self._template(who, where, body)
        return await self._to_technician(technician, message, now, customer_id)

    async def _window_open(self, technician: Technician, now: datetime) -> bool:
        """The technician's own 24-hour window: when they last wrote to the business number (their
        customer row, like anyone's)."""
        customer = await customer_for_phone(digits(technician.phone), now)
        at = customer.last_inbound_at
        return at is not None and now - at < WINDOW

    def _template(self, who: str, where: str, body: str) -> Template:
        spec = self.desk.catalog.get(TEMPLATE)
        settings = self.desk.settings
        default = settings.shop.default_language
        language = pick_language(spec.languages if spec else (), None, default) or default
        params = tuple(_param(value) for value in (who, where, body))
        return Template(name=TEMPLATE, language=language, body_params=params)

    async def _to_technician(
        self, technician: Technician, message: OutboundMessage, now: datetime, about_customer_id: int | None
    ) -> Message:
        """A queued row to the technician's number; `about_customer_id`: the customer it carries or
        names, if one (erased and exported with them)."""
        customer = await customer_for_phone(digits(technician.phone), now)
        return outbound_row(
            customer, message, now=now, technician_id=technician.id, about_customer_id=about_customer_id
        )


async def about(row: Message, customer_id: int) -> None:
    """Link a technician's received row to the customer it answers (a plain column: no owner, no key)."""
    row.about_customer_id = customer_id
    await Message.filter(id=row.id).update(about_customer_id=customer_id)


def relayed_file(row: Message) -> Media | None:
    """A technician's photo, video, voice note, document or sticker as the message that relays it to
    their customer (by its received id, with its caption and file name); None for anything else."""
    raw = (row.payload or {}).get("message")
    try:
        inbound = InboundMessage.model_validate(raw)
    except ValueError:
        return None
    kind, media_id = inbound.kind, inbound.media_id
    if kind not in MEDIA_KINDS or not media_id:
        return None
    captioned = kind in ("image", "video", "document")  # audio and stickers take none
    caption = clip(inbound.text_content or "", CAPTION_MAX) if captioned else ""
    audio = inbound.audio if kind == "audio" else None
    return Media(
        media_type=cast(MediaKind, kind),
        relayed_media_id=media_id,
        caption=caption or None,
        filename=clip(inbound.file_name or "", FILENAME_MAX) or None,
        voice=bool(audio and audio.voice),
    )


def _param(value: Any) -> str:
    """A template parameter: one line, no runs of spaces (WhatsApp refuses them), not too long."""
    text = " ".join(str(value).split())
    return text[:PARAM_MAX] or "-"
