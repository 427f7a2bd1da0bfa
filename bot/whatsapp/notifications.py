"""Pydantic models of the Cloud API webhook notification (the body of POST /webhook): what Meta tells us.

What the bot sends is in outbound.py; where a message type has a model on both sides, the one here is
named Inbound… (InboundText, InboundMedia, InboundReaction) so that the two are never confused.

Meta adds message types and fields without notice, and a notification we answer with 400 is retried for
7 days, so only the envelope is strict. Every model allows extra fields, and every per-type object is
lenient: one that does not fit is dropped to None (a list loses only its bad items), and the message's
`kind` falls back to "unsupported". The flow answers such a message, and its raw JSON is kept.
Shapes: ../shared/CLOUD_API.md §4, §4a.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AliasChoices,
    AliasPath,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_serializer,
    model_validator,
)

OBJECT = "whatsapp_business_account"
MEDIA_KINDS = frozenset({"image", "document", "audio", "video", "sticker"})
# the message types whose type object sits under the key of the same name
_OBJECT_KINDS = MEDIA_KINDS | {"text", "location", "button", "reaction", "order", "system"}

T = TypeVar("T")


class NotificationError(ValueError):
    """Malformed JSON or a body that is not a WhatsApp notification; the webhook answers 400."""


def _or_none(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        return None


def _valid_items(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        if not isinstance(value, list):
            return []
        kept: list[Any] = []
        for item in value:  # only on the rare bad list: keep what fits
            try:
                kept.extend(handler([item]))
            except ValidationError:
                continue
        return kept


def _utc_datetime(value: Any, handler: ValidatorFunctionWrapHandler) -> datetime:
    """Meta sends Unix seconds as a string; the fast path skips pydantic's datetime parser."""
    if (isinstance(value, str) and value.isdigit()) or type(value) is int:  # bool is not Unix seconds
        try:
            return datetime.fromtimestamp(int(value), UTC)
        except (ValueError, OverflowError, OSError):
            raise ValueError("timestamp is not Unix seconds") from None
    parsed: datetime = handler(value)
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# A type object that may be missing or not fit: None rather than a failed notification.
Lenient = Annotated[T | None, WrapValidator(_or_none)]
# A list whose items that do not fit are dropped (all of it when it is not a list).
LenientList = Annotated[list[T], WrapValidator(_valid_items)]
UtcDatetime = Annotated[datetime, WrapValidator(_utc_datetime)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class GraphErrorInfo(_Model):
    """An error Meta reports inside a notification (not an answer to a request: see errors.py)."""

    code: int
    title: str | None = None
    message: str | None = None
    details: str | None = Field(
        default=None, validation_alias=AliasChoices(AliasPath("error_data", "details"), "details")
    )
    href: str | None = None

    @property
    def summary(self) -> str:
        """One line for logs and the message log: "131047 Re-engagement message: <details>"."""
        title = self.title or self.message or "error"
        text = f"{self.code} {title}"
        if self.details and self.details != title:
            text = f"{text}: {self.details}"
        return " ".join(text.split()) if "\n" in text else text


# ---- the type objects of inbound messages


class ReferredProduct(_Model):
    catalog_id: str | None = None
    product_retailer_id: str | None = None


class MessageContext(_Model):
    """A quoted message (`from`, `id`), a forward marker, or the product a question was asked about."""

    from_: str | None = Field(default=None, alias="from")
    id: str | None = None
    forwarded: bool | None = None
    frequently_forwarded: bool | None = None
    referred_product: Lenient[ReferredProduct] = None


class InboundText(_Model):
    body: str


class InboundMedia(_Model):
    """image, document, audio, video and sticker: fetch the file with GET /{id}."""

    id: str
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    url: str | None = None


class Document(InboundMedia):
    filename: str | None = None


class Audio(InboundMedia):
    voice: bool | None = None


class Sticker(InboundMedia):
    animated: bool | None = None


class Location(_Model):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


class ContactName(_Model):
    formatted_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class ContactPhone(_Model):
    phone: str | None = None
    wa_id: str | None = None
    type: str | None = None


class SharedContact(_Model):
    """A contact card the user sent (not the sender: that is `value.contacts`)."""

    name: Lenient[ContactName] = None
    phones: LenientList[ContactPhone] = Field(default_factory=list)

    @property
    def display_name(self) -> str | None:
        if self.name is None:
            return None
        full = " ".join(part for part in (self.name.first_name, self.name.last_name) if part)
        return self.name.formatted_name or full or None


class InteractiveReply(_Model):
    id: str
    title: str | None = None
    description: str | None = None


class NfmReply(_Model):
    """A completed WhatsApp Flow; its answers (and flow_token) are in `response_json`, a JSON string."""

    name: str | None = None
    body: str | None = None
    response_json: str | None = None

    @property
    def response(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.response_json or "")
        except (ValueError, RecursionError):
            return None
        return data if isinstance(data, dict) else None


class Interactive(_Model):
    type: str | None = None
    button_reply: Lenient[InteractiveReply] = None
    list_reply: Lenient[InteractiveReply] = None
    nfm_reply: Lenient[NfmReply] = None


class Button(_Model):
    """A tapped quick-reply button of a template."""

    payload: str | None = None
    text: str | None = None


class InboundReaction(_Model):
    message_id: str | None = None
    emoji: str | None = None  # absent or "" when the user removed the reaction


class ProductItem(_Model):
    product_retailer_id: str | None = None
    quantity: int | None = None
    item_price: float | None = None
    currency: str | None = None


class InboundOrder(_Model):
    catalog_id: str | None = None
    text: str | None = None
    product_items: LenientList[ProductItem] = Field(default_factory=list)


class System(_Model):
    body: str | None = None
    wa_id: str | None = None
    type: str | None = None


class Unsupported(_Model):
    type: str | None = None


class Referral(_Model):
    """Click-to-WhatsApp ad the conversation started from."""

    source_url: str | None = None
    source_id: str | None = None
    source_type: str | None = None
    headline: str | None = None
    body: str | None = None
    media_type: str | None = None
    image_url: str | None = None
    video_url: str | None = None
    thumbnail_url: str | None = None
    ctwa_clid: str | None = None


class InboundMessage(_Model):
    """One entry of `messages[]`: only from, id, timestamp and type must be right."""

    from_: str = Field(alias="from")
    id: str
    timestamp: UtcDatetime
    type: str
    context: Lenient[MessageContext] = None
    text: Lenient[InboundText] = None
    image: Lenient[InboundMedia] = None
    document: Lenient[Document] = None
    audio: Lenient[Audio] = None
    video: Lenient[InboundMedia] = None
    sticker: Lenient[Sticker] = None
    location: Lenient[Location] = None
    contacts: LenientList[SharedContact] = Field(default_factory=list)
    interactive: Lenient[Interactive] = None
    button: Lenient[Button] = None
    reaction: Lenient[InboundReaction] = None
    order: Lenient[InboundOrder] = None
    system: Lenient[System] = None
    unsupported: Lenient[Unsupported] = None
    errors: LenientList[GraphErrorInfo] = Field(default_factory=list)
    referral: Lenient[Referral] = None

    # The decoded JSON object, set per instance by _keep_raw. Not a PrivateAttr: reading one goes through
    # BaseModel.__getattr__ (over 1 µs); an instance attribute is a plain lookup.
    _raw: ClassVar[dict[str, Any] | None] = None

    @model_validator(mode="wrap")
    @classmethod
    def _keep_raw(cls, data: Any, handler: ModelWrapValidatorHandler[InboundMessage]) -> InboundMessage:
        """Keep the decoded JSON object itself: it is what the message log stores."""
        message = handler(data)
        if isinstance(data, dict) and "from" in data:
            object.__setattr__(message, "_raw", data)  # frozen model: bypass pydantic's __setattr__
        return message

    @field_serializer("timestamp", when_used="json")
    def _unix_seconds(self, value: datetime) -> str:
        return str(int(value.timestamp()))

    @property
    def raw(self) -> dict[str, Any]:
        """The message as Meta sent it (rebuilt in Meta's shape when it was built in code)."""
        raw = self._raw
        if raw is not None:
            return raw
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True) | {
            "from": self.from_,
            "id": self.id,
            "timestamp": self._unix_seconds(self.timestamp),
            "type": self.type,
        }

    @property
    def kind(self) -> str:
        """The normalized type everything downstream uses; never raises."""
        kind = self.type
        if kind in _OBJECT_KINDS:
            return kind if getattr(self, kind) is not None else "unsupported"
        if kind == "interactive":
            body = self.interactive
            if body is not None and (body.button_reply or body.list_reply or body.nfm_reply):
                return kind
        elif kind == "contacts" and self.contacts:
            return kind
        return "unsupported"

    @property
    def text_content(self) -> str | None:
        """What a person would read: text, caption, tapped title, place, emoji, names, note, order text."""
        match self.kind:
            case "text":
                return self.text.body if self.text else None
            case "image" | "document" | "video":
                media = self._media
                return media.caption if media else None
            case "interactive":
                reply = self._reply
                return reply.title if reply else None
            case "button":
                return self.button.text if self.button else None
            case "location":
                if (place := self.location) is None:
                    return None
                return place.name or place.address or f"{place.latitude},{place.longitude}"
            case "reaction":
                return (self.reaction.emoji or None) if self.reaction else None
            case "contacts":
                return ", ".join(name for c in self.contacts if (name := c.display_name)) or None
            case "system":
                return self.system.body if self.system else None
            case "order":
                return (self.order.text or None) if self.order else None
        return None

    @property
    def reply_id(self) -> str | None:
        """The id of a tapped reply button or list row, or a template quick-reply payload."""
        kind = self.kind
        if kind == "interactive":
            reply = self._reply
            return reply.id if reply else None
        if kind == "button" and self.button is not None:
            return self.button.payload
        return None

    @property
    def flow_response(self) -> dict[str, Any] | None:
        """The answers of a completed WhatsApp Flow (with its flow_token), or None."""
        if self.kind == "interactive" and self.interactive and self.interactive.nfm_reply:
            return self.interactive.nfm_reply.response
        return None

    @property
    def media_id(self) -> str | None:
        media = self._media
        return media.id if media else None

    @property
    def media_mime_type(self) -> str | None:
        media = self._media
        return media.mime_type if media else None

    @property
    def file_name(self) -> str | None:
        return self.document.filename if self.kind == "document" and self.document else None

    @property
    def _media(self) -> InboundMedia | None:
        kind = self.kind
        if kind in MEDIA_KINDS:
            media: InboundMedia | None = getattr(self, kind)
            return media
        return None

    @property
    def _reply(self) -> InteractiveReply | None:
        body = self.interactive
        return (body.button_reply or body.list_reply) if body else None


# ---- statuses and the envelope


class Pricing(_Model):
    billable: bool | None = None  # deprecated by Meta: use type and category
    pricing_model: str | None = None
    type: str | None = None
    category: str | None = None


class StatusUpdate(_Model):
    """One entry of `statuses[]`: what happened to a message we sent. `status` stays a str: Meta adds."""

    id: str
    status: str
    timestamp: UtcDatetime
    recipient_id: str | None = None  # group sends and username users may carry other ids
    pricing: Lenient[Pricing] = None
    conversation: Lenient[dict[str, Any]] = None  # gone in webhooks v24+; do not depend on it
    errors: LenientList[GraphErrorInfo] = Field(default_factory=list)
    biz_opaque_callback_data: str | None = None


class Profile(_Model):
    name: str | None = None


class Sender(_Model):
    """An entry of `value.contacts`: who sent the messages beside it."""

    wa_id: str | None = None
    profile: Lenient[Profile] = None


class Metadata(_Model):
    display_phone_number: str | None = None
    phone_number_id: str


class MessagesValue(_Model):
    messaging_product: str | None = None
    metadata: Metadata
    contacts: LenientList[Sender] = Field(default_factory=list)
    messages: list[InboundMessage] = Field(default_factory=list)
    statuses: list[StatusUpdate] = Field(default_factory=list)
    errors: LenientList[GraphErrorInfo] = Field(default_factory=list)


class MessagesChange(_Model):
    field: Literal["messages"]
    value: MessagesValue


class OtherChange(_Model):
    """account_update, message_template_status_update…: other shapes, kept as they came and ignored."""

    field: str
    value: Any = None


def _change_tag(change: Any) -> str:
    field = change.get("field") if isinstance(change, dict) else getattr(change, "field", None)
    return "messages" if field == "messages" else "other"


Change = Annotated[
    Annotated[MessagesChange, Tag("messages")] | Annotated[OtherChange, Tag("other")],
    Discriminator(_change_tag),
]


class Entry(_Model):
    id: str | None = None  # the WhatsApp Business Account id
    changes: list[Change] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class InboundItem:
    """One inbound message with what the envelope says about it."""

    message: InboundMessage
    profile_name: str | None
    phone_number_id: str
    raw: dict[str, Any]


class Notification(_Model):
    object: Literal["whatsapp_business_account"]
    entry: list[Entry]

    def _values(self) -> Iterator[MessagesValue]:
        for entry in self.entry:
            for change in entry.changes:
                if isinstance(change, MessagesChange):
                    yield change.value

    def inbound_messages(self) -> list[InboundItem]:
        """Every message of every entry and change, in the order they came."""
        items = []
        for value in self._values():
            if not value.messages:
                continue
            senders = value.contacts
            names = {s.wa_id: s.profile.name or None for s in senders if s.wa_id and s.profile}
            only = (senders[0].profile.name or None) if len(senders) == 1 and senders[0].profile else None
            phone_number_id = value.metadata.phone_number_id
            for message in value.messages:
                name = names.get(message.from_, only)
                items.append(InboundItem(message, name, phone_number_id, message.raw))
        return items

    def status_updates(self) -> list[StatusUpdate]:
        return [status for value in self._values() for status in value.statuses]

    def errors(self) -> list[GraphErrorInfo]:
        """Errors about the app, account or number (value.errors), not about one message."""
        return [error for value in self._values() for error in value.errors]


def parse_notification(raw_body: bytes) -> Notification:
    """Parse and check the envelope; raises NotificationError with a short reason (it goes in the 400)."""
    try:
        data = json.loads(raw_body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise NotificationError(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise NotificationError("the body is not a JSON object")
    if data.get("object") != OBJECT:
        raise NotificationError(f"object is not {OBJECT!r}")
    if not isinstance(data.get("entry"), list):
        raise NotificationError("entry is not a list")
    try:
        return Notification.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise NotificationError(f"{where}: {first['msg']}") from None
