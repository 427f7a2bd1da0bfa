"""Pydantic models of the Cloud API webhook notification (the body of POST /webhook): what Meta tells us.

What the bot sends is in outbound.py; where a message type has a model on both sides, the one here is
named Inbound… (InboundText, InboundMedia, InboundReaction) so that the two are never confused.

Meta adds message types and fields without notice, and a notification we answer with 400 is retried for
7 days, so only the envelope is strict. Every model allows extra fields, and every per-type object is
lenient: one that does not fit is dropped to None (a list loses only its bad items), and the message's
`kind` falls back to "unsupported". The flow answers such a message, and its raw JSON is kept.
Shapes: Meta's webhooks reference for the messages field; tests/payloads/ holds real-shaped examples.

Everything that reaches a column is limited here, at parse, so that no notification can fail the
commit it shares with others (the column sizes are named in bot/db/models.py). The rule:
- Keys are refused (400, the reason in the answer): a message's `id`, `from` and `from_user_id` and a
  status's `id` that are empty, longer than their column, or hold a character no database stores, and a
  message with neither `from` nor `from_user_id` (since 2026 a customer who uses a username may come
  with only their business-scoped user ID, BSUID). Such a message cannot be deduplicated or answered,
  and Meta never sends one. Identities elsewhere (`contacts[]`, a status's recipient, a system
  message's new ids) are dropped when they do not fit, never refused.
- Display data is clipped: the profile name and file name to their columns, a status string to
  EarlyStatus.status (an unknown status only carries pricing), an error summary, pricing strings, and
  the text a person reads (`text_content`) to Meta's own 4096. Pricing keeps only its known fields.
- Characters no database stores (NUL, lone surrogates) become U+FFFD in every string and key, the raw
  JSON included; looked for only when the raw bytes can hold them. Also refused: JSON nested deeper
  than MAX_DEPTH, numbers no float holds (NaN, Infinity, 1e400), timestamps outside Unix seconds
  0 … 2^32, and error codes no integer column holds (that error entry is dropped, as any bad item).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    AliasPath,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    ModelWrapValidatorHandler,
    StringConstraints,
    Tag,
    ValidationError,
    field_serializer,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

from bot.db.models import (
    BSUID_LENGTH,
    CONSENT_DETAIL_LENGTH,
    INT_RANGE,
    NAME_LENGTH,
    PHONE_LENGTH,
    STATUS_LENGTH,
    WAMID_LENGTH,
)

OBJECT = "whatsapp_business_account"
MEDIA_KINDS = frozenset({"image", "document", "audio", "video", "sticker"})
# the message types whose type object sits under the key of the same name
_OBJECT_KINDS = MEDIA_KINDS | {"text", "location", "button", "reaction", "order", "system"}

T = TypeVar("T")

TEXT_LENGTH = 4096
"""Meta's cap on a text body: `text_content` is clipped to it (captions, names and titles are shorter)."""
ERROR_TITLE_LENGTH = 1024
"""An error summary (Message.error_title, EarlyStatus.error_title, the log line)."""
PRICING_LENGTH = 64
"""Each string of a status's pricing (Message.pricing, EarlyStatus.pricing)."""
MAX_DEPTH = 64
"""JSON nesting refused beyond this: real notifications nest about 8 deep, and a stored payload nested
near the interpreter's recursion limit could not be written or read back."""
_TIMESTAMPS = range(0, 2**32)


class NotificationError(ValueError):
    """Malformed JSON or a body that is not a WhatsApp notification; the webhook answers 400."""


class _OrNone:
    """A value that does not fit becomes None. pydantic-core's own on_error="default": a WrapValidator
    doing the same costs a Python call, a handler and a try per field of every notification."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.with_default_schema(handler(source), default=None, on_error="default")


class _ValidItems:
    """A list keeps only its items that fit (on_error="omit" per item, natively); anything but a list
    becomes []. One bad item never fails the others, nor the notification."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema = handler(source)
        if schema["type"] != "list":
            raise TypeError(f"LenientList needs a list, not {schema['type']}")
        items = core_schema.with_default_schema(schema["items_schema"], on_error="omit")
        return core_schema.with_default_schema(
            core_schema.list_schema(items), default_factory=list, on_error="default"
        )


def _from_unix_seconds(value: Any) -> Any:
    """Meta sends Unix seconds as a string: made a datetime here, so pydantic's datetime parser (which
    takes a datetime as it is) only parses what else may come."""
    if (isinstance(value, str) and value.isdigit()) or type(value) is int:  # bool is not Unix seconds
        try:
            seconds = int(value)
        except ValueError:  # "²" is a digit to isdigit
            raise ValueError("timestamp is not Unix seconds") from None
        if seconds not in _TIMESTAMPS:
            raise ValueError(f"timestamp out of range (Unix seconds {_TIMESTAMPS.start} … 2^32)")
        return datetime.fromtimestamp(seconds, UTC)
    return value


def _in_utc(parsed: datetime) -> datetime:
    """Any datetime as an aware UTC one (naive is UTC) within Unix seconds 0 … 2^32."""
    if parsed.tzinfo is not UTC:
        try:
            parsed = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except OverflowError:
            raise ValueError("timestamp out of range") from None
    if int(parsed.timestamp()) not in _TIMESTAMPS:
        raise ValueError(f"timestamp out of range (Unix seconds {_TIMESTAMPS.start} … 2^32)")
    return parsed


def _clipper(length: int) -> AfterValidator:
    return AfterValidator(lambda value: value[:length])  # the string itself when it is short enough


def _storable_key(value: str) -> str:
    if "\ufffd" in value:  # what a NUL or a lone surrogate became (_decode): not a real id
        raise ValueError("holds a character that cannot be stored")
    return value


# A type object that may be missing or not fit: None rather than a failed notification.
Lenient = Annotated[T | None, _OrNone()]
# A list whose items that do not fit are dropped (all of it when it is not a list).
LenientList = Annotated[list[T], _ValidItems()]
# A before and an after validator, not one wrap validator: a wrap costs a handler and a try per call.
UtcDatetime = Annotated[datetime, BeforeValidator(_from_unix_seconds), AfterValidator(_in_utc)]
# A display string, clipped to its column.
Name = Annotated[str, _clipper(NAME_LENGTH)]
StatusName = Annotated[str, _clipper(STATUS_LENGTH)]
PricingText = Annotated[str, _clipper(PRICING_LENGTH)]
# A key: refused (the whole notification) when it could not be stored or deduplicated.
Wamid = Annotated[
    str, StringConstraints(min_length=1, max_length=WAMID_LENGTH), AfterValidator(_storable_key)
]
Phone = Annotated[
    str, StringConstraints(min_length=1, max_length=PHONE_LENGTH), AfterValidator(_storable_key)
]
Bsuid = Annotated[
    str, StringConstraints(min_length=1, max_length=BSUID_LENGTH), AfterValidator(_storable_key)
]
ErrorCode = Annotated[int, Field(ge=INT_RANGE.start, le=INT_RANGE.stop - 1)]
# An identity outside the message's own keys: None when it does not fit (it cannot name anyone).
OptionalPhone = Annotated[Phone | None, _OrNone()]
OptionalBsuid = Annotated[Bsuid | None, _OrNone()]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class GraphErrorInfo(_Model):
    """An error Meta reports inside a notification (not an answer to a request: see errors.py)."""

    code: ErrorCode
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
        text = " ".join(text.split()) if "\n" in text else text
        return text[:ERROR_TITLE_LENGTH]


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
    filename: Name | None = None


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
    wa_id: OptionalPhone = None
    type: str | None = None


CONTACT_REQUEST = "contact_request"
"""A shared contact's `origin` when it is the user's own number, shared by tapping the request-contact-
info button the bot sent (the phone is Meta's, not typed by the user)."""


class SharedContact(_Model):
    """A contact card the user sent (not the sender: that is `value.contacts`). With `origin:
    "contact_request"` it is the user's own phone, their answer to the bot's "share my number"."""

    name: Lenient[ContactName] = None
    phones: LenientList[ContactPhone] = Field(default_factory=list)
    origin: str | None = None

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
        """Checked as the notification is (_decode): these answers may end up in the database."""
        try:
            data = _decode(self.response_json or "")
        except (ValueError, RecursionError):  # NotificationError is a ValueError
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


USER_CHANGED_NUMBER = "user_changed_number"
USER_CHANGED_USER_ID = "user_changed_user_id"


class System(_Model):
    """`user_changed_number`: the new phone (`wa_id`) and, since 2026, the new BSUID (`user_id`; a new
    number gives a new BSUID). `user_changed_user_id`: only the BSUID changed (no phone). Both carry the
    previous BSUID (`previous_user_id`). No `contacts` come with a system message."""

    body: str | None = None
    wa_id: OptionalPhone = None
    user_id: OptionalBsuid = None
    parent_user_id: OptionalBsuid = None
    previous_user_id: OptionalBsuid = None
    previous_parent_user_id: OptionalBsuid = None
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
    """One entry of `messages[]`: only the sender (`from`, the phone, or `from_user_id`, the BSUID: one
    of them at least), id, timestamp and type must be right."""

    from_: Phone | None = Field(default=None, alias="from")
    from_user_id: Bsuid | None = None
    from_parent_user_id: OptionalBsuid = None
    id: Wamid
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
        if message.from_ is None and message.from_user_id is None:
            raise ValueError("a message needs its sender: `from` (phone) or `from_user_id` (BSUID)")
        if isinstance(data, dict) and ("from" in data or "from_user_id" in data):
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
        sender = {"from": self.from_} if self.from_ else {}
        if self.from_user_id:
            sender["from_user_id"] = self.from_user_id
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True) | {
            **sender,
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
        """What a person would read: text, caption, tapped title, place, emoji, names, note, order text.
        Clipped to TEXT_LENGTH (the raw JSON keeps it all)."""
        text = self._text_content()
        return text[:TEXT_LENGTH] if text else text

    def _text_content(self) -> str | None:
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
    def address(self) -> str:
        """What it came from: the phone when Meta gave it, else the BSUID."""
        address = self.from_ or self.from_user_id
        assert address is not None  # _keep_raw refuses a message without either
        return address

    @property
    def shared_phone(self) -> str | None:
        """The user's own phone, when this is their answer to the bot's "share my number" (a contacts
        message whose first card has origin contact_request); None for any other card."""
        if self.kind != "contacts" or self.contacts[0].origin != CONTACT_REQUEST:
            return None
        return next((phone.wa_id for phone in self.contacts[0].phones if phone.wa_id), None)

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
    pricing_model: PricingText | None = None
    type: PricingText | None = None
    category: PricingText | None = None

    def column(self) -> dict[str, Any]:
        """What the pricing column keeps: the known fields (extras could be any size or depth)."""
        known = {
            "billable": self.billable,
            "pricing_model": self.pricing_model,
            "type": self.type,
            "category": self.category,
        }
        return {key: value for key, value in known.items() if value is not None}


class StatusUpdate(_Model):
    """One entry of `statuses[]`: what happened to a message we sent. `status` stays a str: Meta adds."""

    id: Wamid
    status: StatusName
    timestamp: UtcDatetime
    recipient_id: str | None = None  # absent when the message went to a BSUID
    recipient_user_id: str | None = None
    """The BSUID it went to (present only when it was sent to one)."""
    pricing: Lenient[Pricing] = None
    conversation: Lenient[dict[str, Any]] = None  # gone in webhooks v24+; do not depend on it
    errors: LenientList[GraphErrorInfo] = Field(default_factory=list)
    biz_opaque_callback_data: str | None = None


class Profile(_Model):
    name: Name | None = None
    username: Name | None = None


class Sender(_Model):
    """An entry of `value.contacts`: who sent the messages beside it. `wa_id` is absent when the user's
    phone is not shared; `user_id` (BSUID) is there on every inbound message since 2026. A status's
    contacts may carry only a `wa_id`, no profile."""

    wa_id: OptionalPhone = None
    user_id: OptionalBsuid = None
    parent_user_id: OptionalBsuid = None
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


PREFERENCES_FIELD = "user_preferences"
MARKETING_MESSAGES = "marketing_messages"
PREFERENCE_VALUES = {"stop": True, "resume": False}
"""A marketing preference's `value`: True, the user stopped marketing messages; False, resumed."""
PREFERENCE_TEXT_LENGTH = 64
"""A preference's `category` and `value` (only logged when unknown)."""


class UserPreference(_Model):
    """One entry of `user_preferences[]` (Meta's user_preferences webhook): a user stopped or resumed
    marketing messages. Its user is `wa_id` and, since 2026, `user_id` (the BSUID), either of which may
    be missing (the contacts entry beside it fills in). Everything is lenient: a stop is never refused
    for an odd field; a missing or bad `timestamp` is the time it arrived."""

    wa_id: OptionalPhone = None
    user_id: OptionalBsuid = None
    parent_user_id: OptionalBsuid = None
    detail: Lenient[Annotated[str, _clipper(CONSENT_DETAIL_LENGTH)]] = None
    category: Lenient[Annotated[str, _clipper(PREFERENCE_TEXT_LENGTH)]] = None
    value: Lenient[Annotated[str, _clipper(PREFERENCE_TEXT_LENGTH)]] = None
    timestamp: Lenient[UtcDatetime] = None


class PreferencesValue(_Model):
    metadata: Lenient[Metadata] = None
    contacts: LenientList[Sender] = Field(default_factory=list)
    user_preferences: LenientList[UserPreference] = Field(default_factory=list)


class PreferencesChange(_Model):
    field: Literal["user_preferences"]
    value: Lenient[PreferencesValue] = None


@dataclass(frozen=True, slots=True)
class PreferenceItem:
    """One user_preferences entry with its user's ids (at least one), as the intake records it."""

    phone: str | None
    bsuid: str | None
    category: str | None
    value: str | None
    at: datetime | None
    detail: str | None

    @property
    def marketing_stop(self) -> bool | None:
        """True: they stopped marketing messages; False: resumed; None: a category or value this bot
        does not know (logged and acknowledged, never refused)."""
        if self.category != MARKETING_MESSAGES:
            return None
        return PREFERENCE_VALUES.get((self.value or "").strip().lower())


LIMIT_FIELDS = ("business_capability_update", "phone_number_quality_update")
LIMIT_KEY = "max_daily_conversations_per_business"


class OtherChange(_Model):
    """account_update, message_template_status_update…: other shapes, kept as they came and ignored."""

    field: str
    value: Any = None


def _change_tag(change: Any) -> str:
    field = change.get("field") if isinstance(change, dict) else getattr(change, "field", None)
    return field if field in ("messages", PREFERENCES_FIELD) else "other"


Change = Annotated[
    Annotated[MessagesChange, Tag("messages")]
    | Annotated[PreferencesChange, Tag(PREFERENCES_FIELD)]
    | Annotated[OtherChange, Tag("other")],
    Discriminator(_change_tag),
]


class Entry(_Model):
    id: str | None = None  # the WhatsApp Business Account id
    changes: list[Change] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SenderIds:
    """Everything a message and its envelope say about who sent it (all optional but one of the first
    two): what bot/identity resolves to a customer."""

    phone: str | None
    bsuid: str | None
    parent_bsuid: str | None = None
    username: str | None = None


@dataclass(frozen=True, slots=True)
class InboundItem:
    """One inbound message with what the envelope says about it."""

    message: InboundMessage
    profile_name: str | None
    phone_number_id: str
    raw: dict[str, Any]
    sender: SenderIds | None = None

    @property
    def sender_ids(self) -> SenderIds:
        if self.sender is not None:
            return self.sender
        message = self.message
        return SenderIds(message.from_, message.from_user_id, message.from_parent_user_id)


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
            by_id: dict[str, Sender] = {}
            for entry in senders:
                for key in (entry.wa_id, entry.user_id):
                    if key and (key not in by_id or (by_id[key].profile is None and entry.profile)):
                        by_id[key] = entry  # the first with a profile, else the first
            only = senders[0] if len(senders) == 1 else None
            phone_number_id = value.metadata.phone_number_id
            for message in value.messages:
                contact: Sender | None = by_id.get(message.from_user_id or "") or by_id.get(
                    message.from_ or ""
                )
                named = contact or only  # the only contact's name, even when its ids differ
                if contact is None and only is not None and not _contradicts(only, message):
                    contact = only  # its ids too, when they do not name someone else
                items.append(
                    InboundItem(
                        message,
                        (named.profile.name or None) if named and named.profile else None,
                        phone_number_id,
                        message.raw,
                        _sender(message, contact),
                    )
                )
        return items

    def user_preferences(self) -> list[PreferenceItem]:
        """Every user_preferences entry that names its user (by its own ids, else the only contact's)."""
        items = []
        for entry in self.entry:
            for change in entry.changes:
                if not isinstance(change, PreferencesChange) or change.value is None:
                    continue
                contacts = change.value.contacts
                only = contacts[0] if len(contacts) == 1 else None
                for pref in change.value.user_preferences:
                    phone, bsuid = pref.wa_id, pref.user_id
                    if phone is None and bsuid is None and only is not None:
                        phone, bsuid = only.wa_id, only.user_id
                    if phone is None and bsuid is None:
                        continue  # it names nobody: nothing to record
                    items.append(
                        PreferenceItem(phone, bsuid, pref.category, pref.value, pref.timestamp, pref.detail)
                    )
        return items

    def status_updates(self) -> list[StatusUpdate]:
        return [status for value in self._values() for status in value.statuses]

    def errors(self) -> list[GraphErrorInfo]:
        """Errors about the app, account or number (value.errors), not about one message."""
        return [error for value in self._values() for error in value.errors]

    def messaging_limits(self) -> list[int | None]:
        """The portfolio's messaging limit from `business_capability_update` (and the limit a
        `phone_number_quality_update` carries): `max_daily_conversations_per_business`, -1 (None here)
        meaning unlimited. A value of another shape is ignored: it is Meta's news, not our input."""
        found: list[int | None] = []
        for entry in self.entry:
            for change in entry.changes:
                if not isinstance(change, OtherChange) or change.field not in LIMIT_FIELDS:
                    continue
                value = change.value.get(LIMIT_KEY) if isinstance(change.value, dict) else None
                if isinstance(value, bool) or not isinstance(value, int):
                    continue
                if value == -1:
                    found.append(None)
                elif 0 < value < 2**31:
                    found.append(value)
        return found


def _contradicts(contact: Sender, message: InboundMessage) -> bool:
    """A contacts entry that names someone else than the message's sender."""
    return bool(
        (contact.wa_id and message.from_ and contact.wa_id != message.from_)
        or (contact.user_id and message.from_user_id and contact.user_id != message.from_user_id)
    )


def _sender(message: InboundMessage, contact: Sender | None) -> SenderIds:
    """The message's own ids first; the contacts entry fills in what it leaves out."""
    profile = contact.profile if contact else None
    return SenderIds(
        phone=message.from_ or (contact.wa_id if contact else None),
        bsuid=message.from_user_id or (contact.user_id if contact else None),
        parent_bsuid=message.from_parent_user_id or (contact.parent_user_id if contact else None),
        username=(profile.username or None) if profile else None,
    )


def parse_notification(raw_body: bytes) -> Notification:
    """Parse and check the envelope; raises NotificationError with a short reason (it goes in the 400)."""
    data = _decode(raw_body)
    if not isinstance(data, dict):
        raise NotificationError("the body is not a JSON object")
    if data.get("object") != OBJECT:
        raise NotificationError(f"object is not {OBJECT!r}")
    if not isinstance(data.get("entry"), list):
        raise NotificationError("entry is not a list")
    try:  # the validator itself: model_validate adds a Python call with its keyword handling
        notification: Notification = Notification.__pydantic_validator__.validate_python(data)
        return notification
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise NotificationError(f"{where}: {first['msg']}") from None


# ---- JSON as the database can store it


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"number out of range: {text[:32]}")
    return number


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_JSON = json.JSONDecoder(parse_float=_finite, parse_constant=_not_json)
_SCAN: Callable[[str, int], tuple[Any, int]] = vars(_JSON)["scan_once"]
"""The decoder's own scanner (C, made per decoder instance; not in the type stubs)."""
# How a NUL or a lone surrogate can reach the decoded strings: as an escape (\u0000, or a \ud800 that
# is not half of a pair), or as a surrogate itself (json decodes a surrogate's UTF-8 bytes with
# surrogatepass). The escape pattern starts with a literal, which re searches for fast.
_UNSTORABLE_ESCAPE = re.compile(
    r"\\u(?:0000"
    r"|[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"  # a high surrogate without its low half
    r"|[dD][c-fC-F][0-9a-fA-F]{2}(?<![dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}))"  # a lone low
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""NUL (PostgreSQL refuses it in text and jsonb) and lone surrogates (no UTF-8 encoder takes them)."""


def _decode(raw: bytes | str) -> Any:
    """json.loads, refusing what no database stores and replacing the characters none encodes.

    The walk over the decoded tree costs; it runs only when the text can hold such a character, or
    holds enough brackets to nest deeper than MAX_DEPTH (a batch of many messages)."""
    try:
        text = raw.decode(_encoding(raw), "surrogatepass") if isinstance(raw, bytes) else raw
        data = _object(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise NotificationError(f"invalid JSON: {exc}") from None
    clean = ("\\u" in text and _UNSTORABLE_ESCAPE.search(text) is not None) or (
        not text.isascii() and _SURROGATE.search(text) is not None  # isascii: a flag, no scan
    )
    if clean or text.count("{") + text.count("[") > MAX_DEPTH:
        data = _checked(data, clean=clean)
    return data


def _encoding(raw: bytes) -> str:
    """json.detect_encoding's answer, without its checks for a body that starts like Meta's: "{" and no
    NUL (no BOM, not UTF-16/32)."""
    if raw[:1] == b"{" and raw[1:2] != b"\x00":
        return "utf-8"
    return json.detect_encoding(raw)


def _object(text: str) -> Any:
    """_JSON.decode(text) for an object with nothing around it (a webhook body) straight from the C
    scanner, skipping decode's two whitespace matches; anything else, or a failure, goes through decode
    itself, so the result and the error are its own."""
    if text[:1] == "{" and text[-1:] == "}":
        try:
            data, end = _SCAN(text, 0)
        except (StopIteration, ValueError):  # decode below raises the JSONDecodeError it would
            pass
        else:
            if end == len(text):
                return data
    return _JSON.decode(text)


def _storable(text: str) -> str:
    return _UNSTORABLE.sub("\ufffd", text)


def _checked(data: Any, *, clean: bool) -> Any:
    """Refuse nesting deeper than MAX_DEPTH and (when `clean`) replace NULs and lone surrogates with
    U+FFFD in every string and key, in place. Iterative: the tree may be nested near the recursion
    limit."""
    if isinstance(data, str):
        return _storable(data) if clean else data
    stack: list[tuple[dict[str, Any] | list[Any], int]] = []
    if isinstance(data, dict | list):
        stack.append((data, 1))
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise NotificationError(f"JSON nested deeper than {MAX_DEPTH}")
        if isinstance(node, dict):
            if clean and any(_UNSTORABLE.search(key) for key in node):
                items = [(_storable(key), value) for key, value in node.items()]
                node.clear()
                node.update(items)
            entries: Iterator[tuple[Any, Any]] = iter(node.items())
        else:
            entries = enumerate(node)
        for key, value in entries:  # replacing a value keeps the dict's size: iterating goes on
            if isinstance(value, str):
                if clean and _UNSTORABLE.search(value):
                    node[key] = _storable(value)
            elif isinstance(value, dict | list):
                stack.append((value, depth + 1))
    return data
