"""Outbound messages as values: what the engine produces, the outbox stores and the client sends.

Each model knows its Cloud API request body (`to_payload`) and a short human-readable line for the
message log (`log_content`). Limits are the Cloud API's own (Meta's messages reference), checked
when the value is built, so a bad message is refused before it is queued, never by Meta after.
The `kind` field discriminates the union, so an outbox row's JSON turns back into the same value.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

TEXT_MAX = 4096
CAPTION_MAX = 1024
FILENAME_MAX = 240
BUTTON_BODY_MAX = 1024
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
MAX_BUTTONS = 3
LIST_BODY_MAX = 4096
LIST_BUTTON_MAX = 20
LIST_SECTION_TITLE_MAX = 24
LIST_ROW_TITLE_MAX = 24
LIST_ROW_ID_MAX = 200
LIST_ROW_DESCRIPTION_MAX = 72
LIST_MAX_ROWS = 10
LIST_MAX_SECTIONS = 10
HEADER_MAX = 60
FOOTER_MAX = 60


def clip(text: str, limit: int) -> str:
    """Variables can make a text longer than WhatsApp allows: cut it with "…" rather than fail the
    message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Text(_Value):
    kind: Literal["text"] = "text"
    body: str = Field(min_length=1, max_length=TEXT_MAX)
    preview_url: bool = False

    @property
    def message_type(self) -> str:
        return "text"

    def type_object(self) -> dict[str, Any]:
        return {"body": self.body, "preview_url": self.preview_url}

    def log_content(self) -> str:
        return self.body


MediaKind = Literal["image", "document", "audio", "video", "sticker"]
MB = 1024 * 1024
MEDIA_MAX_BYTES: dict[str, int] = {
    "image": 5 * MB,
    "video": 16 * MB,
    "audio": 16 * MB,
    "document": 100 * MB,
    "sticker": 500 * 1024,
}
"""The largest file WhatsApp sends of each kind (Meta's Media page)."""


class Media(_Value):
    """Media by public link, by uploaded media id, or by a media id the business number received
    (exactly one of them)."""

    kind: Literal["media"] = "media"
    media_type: MediaKind
    link: str | None = None
    media_id: str | None = None
    relayed_media_id: str | None = Field(default=None, min_length=1, max_length=128)
    """A file someone sent the business number (a technician's photo for their customer): a received id
    is not one to send, so the client sends a copy, downloaded and uploaded again (WhatsAppClient.send)."""
    caption: str | None = Field(default=None, max_length=CAPTION_MAX)
    filename: str | None = Field(default=None, max_length=FILENAME_MAX)
    voice: bool = False

    @model_validator(mode="after")
    def _check(self) -> Media:
        if sum(source is not None for source in (self.link, self.media_id, self.relayed_media_id)) != 1:
            raise ValueError("give exactly one of link, media_id or relayed_media_id")
        if self.caption and self.media_type in ("audio", "sticker"):
            raise ValueError(f"{self.media_type} messages take no caption")
        if self.filename and self.media_type != "document":
            raise ValueError("only documents take a filename")
        if self.voice and self.media_type != "audio":
            raise ValueError("only audio can be a voice note")
        return self

    @property
    def message_type(self) -> str:
        return self.media_type

    def type_object(self) -> dict[str, Any]:
        if self.relayed_media_id is not None:
            raise ValueError("a relayed file is sent as its copy: WhatsAppClient.send uploads it first")
        obj: dict[str, Any] = {"link": self.link} if self.link else {"id": self.media_id}
        if self.caption:
            obj["caption"] = self.caption
        if self.filename:
            obj["filename"] = self.filename
        if self.voice:
            obj["voice"] = True
        return obj

    def log_content(self) -> str:
        return self.caption or self.filename or ""

    @property
    def file_url(self) -> str | None:
        return self.link


class Template(_Value):
    """An approved template with positional body parameters ({{1}}, {{2}}, ...)."""

    kind: Literal["template"] = "template"
    name: str = Field(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")
    language: str = Field(min_length=2)
    body_params: tuple[str, ...] = ()
    button_payloads: tuple[str, ...] = ()

    @property
    def message_type(self) -> str:
        return "template"

    def type_object(self) -> dict[str, Any]:
        components: list[dict[str, Any]] = []
        if self.body_params:
            components.append(
                {"type": "body", "parameters": [{"type": "text", "text": p} for p in self.body_params]}
            )
        for index, payload in enumerate(self.button_payloads):
            components.append(
                {
                    "type": "button",
                    "sub_type": "quick_reply",
                    "index": str(index),
                    "parameters": [{"type": "payload", "payload": payload}],
                }
            )
        obj: dict[str, Any] = {"name": self.name, "language": {"code": self.language}}
        if components:
            obj["components"] = components
        return obj

    def log_content(self) -> str:
        return f"[template {self.name}/{self.language}] " + " | ".join(self.body_params)


class ReplyButton(_Value):
    id: str = Field(min_length=1, max_length=BUTTON_ID_MAX)
    title: str = Field(min_length=1, max_length=BUTTON_TITLE_MAX)


class Buttons(_Value):
    """Interactive reply buttons: at most 3, titles unique and at most 20 characters."""

    kind: Literal["buttons"] = "buttons"
    body: str = Field(min_length=1, max_length=BUTTON_BODY_MAX)
    buttons: tuple[ReplyButton, ...] = Field(min_length=1, max_length=MAX_BUTTONS)
    header: str | None = Field(default=None, max_length=HEADER_MAX)
    footer: str | None = Field(default=None, max_length=FOOTER_MAX)

    @model_validator(mode="after")
    def _unique(self) -> Buttons:
        titles = [b.title for b in self.buttons]
        if len(set(titles)) != len(titles):
            raise ValueError("button titles must be unique")
        ids = [b.id for b in self.buttons]
        if len(set(ids)) != len(ids):
            raise ValueError("button ids must be unique")
        return self

    @property
    def message_type(self) -> str:
        return "interactive"

    def type_object(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "type": "button",
            "body": {"text": self.body},
            "action": {
                "buttons": [{"type": "reply", "reply": {"id": b.id, "title": b.title}} for b in self.buttons]
            },
        }
        _add_header_footer(obj, self.header, self.footer)
        return obj

    def log_content(self) -> str:
        return self.body + "\n" + " ".join(f"[{b.title}]" for b in self.buttons)


class ListRow(_Value):
    id: str = Field(min_length=1, max_length=LIST_ROW_ID_MAX)
    title: str = Field(min_length=1, max_length=LIST_ROW_TITLE_MAX)
    description: str | None = Field(default=None, max_length=LIST_ROW_DESCRIPTION_MAX)


class ListSection(_Value):
    title: str | None = Field(default=None, max_length=LIST_SECTION_TITLE_MAX)
    rows: tuple[ListRow, ...] = Field(min_length=1)


class ListMessage(_Value):
    """Interactive list: at most 10 sections and 10 rows in all, row ids unique."""

    kind: Literal["list"] = "list"
    body: str = Field(min_length=1, max_length=LIST_BODY_MAX)
    button: str = Field(min_length=1, max_length=LIST_BUTTON_MAX)
    sections: tuple[ListSection, ...] = Field(min_length=1, max_length=LIST_MAX_SECTIONS)
    header: str | None = Field(default=None, max_length=HEADER_MAX)
    footer: str | None = Field(default=None, max_length=FOOTER_MAX)

    @model_validator(mode="after")
    def _rows(self) -> ListMessage:
        rows = [row for section in self.sections for row in section.rows]
        if len(rows) > LIST_MAX_ROWS:
            raise ValueError(f"a list holds at most {LIST_MAX_ROWS} rows in all, got {len(rows)}")
        if len({r.id for r in rows}) != len(rows):
            raise ValueError("list row ids must be unique")
        if len(self.sections) > 1 and any(not s.title for s in self.sections):
            raise ValueError("every section needs a title when there is more than one")
        return self

    @property
    def message_type(self) -> str:
        return "interactive"

    def type_object(self) -> dict[str, Any]:
        sections = []
        for section in self.sections:
            rendered: dict[str, Any] = {
                "rows": [
                    {
                        "id": r.id,
                        "title": r.title,
                        **({"description": r.description} if r.description else {}),
                    }
                    for r in section.rows
                ]
            }
            if section.title:
                rendered["title"] = section.title
            sections.append(rendered)
        obj: dict[str, Any] = {
            "type": "list",
            "body": {"text": self.body},
            "action": {"button": self.button, "sections": sections},
        }
        _add_header_footer(obj, self.header, self.footer)
        return obj

    def log_content(self) -> str:
        titles = [row.title for section in self.sections for row in section.rows]
        return self.body + "\n" + " ".join(f"[{t}]" for t in titles)


class Reaction(_Value):
    """A reaction to one message; an empty emoji removes it."""

    kind: Literal["reaction"] = "reaction"
    message_id: str = Field(min_length=1)
    emoji: str = ""

    @property
    def message_type(self) -> str:
        return "reaction"

    def type_object(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "emoji": self.emoji}

    def log_content(self) -> str:
        return self.emoji


def _add_header_footer(obj: dict[str, Any], header: str | None, footer: str | None) -> None:
    if header:
        obj["header"] = {"type": "text", "text": header}
    if footer:
        obj["footer"] = {"text": footer}


class ContactRequest(_Value):
    """WhatsApp's "share my number" button (the interactive request_contact_info message): the user's tap
    sends their own phone number back, as a `contacts` message with origin contact_request. For a
    customer known only by their business-scoped user ID. The button's own text is WhatsApp's."""

    kind: Literal["contact_request"] = "contact_request"
    body: str = Field(min_length=1, max_length=BUTTON_BODY_MAX)

    @property
    def message_type(self) -> str:
        return "interactive"

    def type_object(self) -> dict[str, Any]:
        return {
            "type": "request_contact_info",
            "body": {"text": self.body},
            "action": {"name": "request_contact_info"},
        }

    def log_content(self) -> str:
        return f"{self.body} [share my number]"


OutboundMessage = Annotated[
    Text | Media | Template | Buttons | ListMessage | Reaction | ContactRequest,
    Field(discriminator="kind"),
]
OUTBOUND_ADAPTER: TypeAdapter[OutboundMessage] = TypeAdapter(OutboundMessage)


def to_request_body(to: str, message: OutboundMessage, reply_to: str | None = None) -> dict[str, Any]:
    """The JSON body of POST /{phone_number_id}/messages. `to` is a phone (digits; it gets its '+' as
    Meta advises) or a business-scoped user ID, which goes as `"recipient"` with no `to` (a BSUID in
    `to` is not delivered)."""
    address: dict[str, str]
    if to.lstrip("+").isdigit():
        address = {"to": to if to.startswith("+") else f"+{to}"}
    else:
        address = {"recipient": to}
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        **address,
        "type": message.message_type,
        message.message_type: message.type_object(),
    }
    if reply_to and not isinstance(message, Reaction):
        body["context"] = {"message_id": reply_to}
    return body


def is_free_form(message: OutboundMessage) -> bool:
    """Everything but a template needs an open 24-hour customer service window."""
    return not isinstance(message, Template)
