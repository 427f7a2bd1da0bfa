"""Pydantic models of the Cloud API webhook notification (the body of POST /webhook).

Meta adds message types and fields without notice, so only the envelope is strict: a message of a type
we do not know, or whose type object does not fit, still parses, and its `kind` is "unsupported" (it is
stored with its raw JSON and the flow answers it). Shapes: ../shared/CLOUD_API.md §4, §4a.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MEDIA_KINDS = frozenset({"image", "document", "audio", "video", "sticker"})


class NotificationError(ValueError):
    """Malformed JSON or a body that is not a WhatsApp notification; the webhook answers 400."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


def _unix_time(value: Any) -> datetime:
    """Meta sends Unix seconds as a string."""
    if isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(int(value), tz=UTC)


class GraphErrorInfo(_Model):
    code: int
    title: str | None = None
    message: str | None = None
    error_data: dict[str, Any] | None = None
    href: str | None = None

    @property
    def details(self) -> str | None:
        details = (self.error_data or {}).get("details")
        return str(details) if details is not None else None

    @property
    def summary(self) -> str:
        """One line for logs and the message log: "131047 Re-engagement message: <details>"."""
        text = f"{self.code} {self.title or self.message or 'error'}"
        return f"{text}: {self.details}" if self.details else text


class MessageContext(_Model):
    from_: str | None = Field(default=None, alias="from")
    id: str | None = None
    forwarded: bool | None = None
    frequently_forwarded: bool | None = None


class TextBody(_Model):
    body: str


class MediaObject(_Model):
    id: str
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None
    url: str | None = None
    voice: bool | None = None
    animated: bool | None = None


class Location(_Model):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


class ContactName(_Model):
    formatted_name: str | None = None


class Contact(_Model):
    name: ContactName | None = None


class Reply(_Model):
    id: str
    title: str | None = None
    description: str | None = None


class Interactive(_Model):
    type: str | None = None
    button_reply: Reply | None = None
    list_reply: Reply | None = None
    nfm_reply: dict[str, Any] | None = None


class TemplateButton(_Model):
    payload: str | None = None
    text: str | None = None


class ReactionBody(_Model):
    message_id: str
    emoji: str | None = None


class System(_Model):
    body: str | None = None
    wa_id: str | None = None
    type: str | None = None


# the type objects we understand, by message type; anything else is "unsupported"
_TYPE_OBJECTS: dict[str, type[BaseModel]] = {
    "text": TextBody,
    "image": MediaObject,
    "document": MediaObject,
    "audio": MediaObject,
    "video": MediaObject,
    "sticker": MediaObject,
    "location": Location,
    "interactive": Interactive,
    "button": TemplateButton,
    "reaction": ReactionBody,
    "system": System,
}


class InboundMessage(_Model):
    """One entry of `messages[]`. Its type object is checked lazily, so nothing here can fail on it."""

    from_: str = Field(alias="from")
    id: str
    timestamp: datetime
    type: str
    context: MessageContext | None = None

    _timestamp = field_validator("timestamp", mode="before")(_unix_time)

    @cached_property
    def _type_object(self) -> BaseModel | None:
        model = _TYPE_OBJECTS.get(self.type)
        raw = (self.model_extra or {}).get(self.type)
        if model is None or not isinstance(raw, dict):
            return None
        try:
            return model.model_validate(raw)
        except ValidationError:
            return None

    @property
    def kind(self) -> str:
        """The normalized type everything downstream uses; never raises."""
        if self.type == "contacts":
            contacts = (self.model_extra or {}).get("contacts")
            return "contacts" if isinstance(contacts, list) and contacts else "unsupported"
        if self.type == "order":
            return "order" if isinstance((self.model_extra or {}).get("order"), dict) else "unsupported"
        body = self._type_object
        if body is None:
            return "unsupported"
        if isinstance(body, Interactive) and not (body.button_reply or body.list_reply or body.nfm_reply):
            return "unsupported"
        return self.type

    @property
    def text_content(self) -> str | None:
        """What a person would read: text, caption, tapped title, place, emoji, names, system note."""
        body = self._type_object
        match body:
            case TextBody():
                return body.body
            case MediaObject():
                return body.caption
            case Interactive():
                reply = body.button_reply or body.list_reply
                return reply.title if reply else None
            case TemplateButton():
                return body.text
            case Location():
                return body.name or body.address or f"{body.latitude},{body.longitude}"
            case ReactionBody():
                return body.emoji or None
            case System():
                return body.body
        if self.type == "contacts":
            names = [
                (contact.get("name") or {}).get("formatted_name")
                for contact in (self.model_extra or {}).get("contacts") or []
                if isinstance(contact, dict)
            ]
            return ", ".join(name for name in names if name) or None
        if self.type == "order":
            order = (self.model_extra or {}).get("order") or {}
            return str(order.get("text")) if isinstance(order, dict) and order.get("text") else None
        return None

    @property
    def reply_id(self) -> str | None:
        """The id of a tapped reply button or list row, or a template quick-reply payload."""
        body = self._type_object
        if isinstance(body, Interactive):
            reply = body.button_reply or body.list_reply
            return reply.id if reply else None
        if isinstance(body, TemplateButton):
            return body.payload
        return None

    @property
    def media_id(self) -> str | None:
        body = self._type_object
        return body.id if isinstance(body, MediaObject) else None

    @property
    def media_mime_type(self) -> str | None:
        body = self._type_object
        return body.mime_type if isinstance(body, MediaObject) else None

    @property
    def file_name(self) -> str | None:
        body = self._type_object
        return body.filename if isinstance(body, MediaObject) else None


class Pricing(_Model):
    billable: bool | None = None
    pricing_model: str | None = None
    type: str | None = None
    category: str | None = None


class StatusUpdate(_Model):
    id: str
    status: str
    timestamp: datetime
    recipient_id: str | None = None
    pricing: Pricing | None = None
    conversation: dict[str, Any] | None = None
    errors: list[GraphErrorInfo] = []
    biz_opaque_callback_data: str | None = None

    _timestamp = field_validator("timestamp", mode="before")(_unix_time)


class Profile(_Model):
    name: str | None = None


class ContactInfo(_Model):
    wa_id: str | None = None
    profile: Profile | None = None


class Metadata(_Model):
    display_phone_number: str | None = None
    phone_number_id: str


class MessagesValue(_Model):
    messaging_product: str | None = None
    metadata: Metadata
    contacts: list[ContactInfo] = []
    messages: list[dict[str, Any]] = []
    statuses: list[StatusUpdate] = []
    errors: list[GraphErrorInfo] = []


class Change(_Model):
    field: str
    value: dict[str, Any]


class Entry(_Model):
    id: str | None = None
    changes: list[Change] = []


@dataclass(frozen=True)
class InboundItem:
    """One inbound message with what the envelope says about it."""

    message: InboundMessage
    profile_name: str | None
    phone_number_id: str
    raw: dict[str, Any]


class Notification(_Model):
    object: str
    entry: list[Entry]
    # parsed once by parse_notification; a field rather than a property so it is computed once
    values: list[MessagesValue] = Field(default=[], exclude=True)
    inbound: list[InboundItem] = Field(default=[], exclude=True)

    def inbound_messages(self) -> list[InboundItem]:
        return self.inbound

    def status_updates(self) -> list[StatusUpdate]:
        return [status for value in self.values for status in value.statuses]

    def errors(self) -> list[GraphErrorInfo]:
        return [error for value in self.values for error in value.errors]


def parse_notification(raw_body: bytes) -> Notification:
    """Parse and check the envelope; raises NotificationError with a short reason."""
    try:
        data = json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotificationError(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise NotificationError("the body must be a JSON object")
    if data.get("object") != "whatsapp_business_account":
        raise NotificationError("object must be 'whatsapp_business_account'")
    try:
        envelope = Notification.model_validate({"object": data["object"], "entry": data.get("entry")})
        values = [
            MessagesValue.model_validate(change.value)
            for entry in envelope.entry
            for change in entry.changes
            if change.field == "messages"
        ]
        inbound = [_item(value, raw) for value in values for raw in value.messages]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise NotificationError(f"{where}: {first['msg']}") from None
    return envelope.model_copy(update={"values": values, "inbound": inbound})


def _item(value: MessagesValue, raw: dict[str, Any]) -> InboundItem:
    message = InboundMessage.model_validate(raw)
    name = None
    for contact in value.contacts:
        if contact.profile and (contact.wa_id == message.from_ or len(value.contacts) == 1):
            name = contact.profile.name
            break
    return InboundItem(message, name, value.metadata.phone_number_id, raw)
