"""What the engine consumes: one normalized inbound message, and who sent it.

The inbox turns a webhook message into an `Event`; the engine never sees webhook JSON, so the terminal
simulator and flow tests can drive it with hand-made events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

TEXT_LIKE_TYPES: frozenset[str] = frozenset({"text", "interactive", "button"})
TIMEOUT = "timeout"
"""The event type and trigger of a conversation's silence timer (the customer never sends it)."""
QUIET_TYPES: frozenset[str] = frozenset({"reaction", "system", TIMEOUT})
"""Events a flow ignores unless it names them: answering a reaction or a system notice is noise."""


@dataclass(frozen=True)
class Event:
    """One inbound message, reduced to what a flow can react to."""

    type: str
    """Normalized inbound type: text, image, document, audio, video, sticker, location, contacts,
    interactive, button, reaction, order, system or unsupported."""
    text: str | None = None
    """The text body, a media caption, or the title of the tapped button or list row."""
    reply_id: str | None = None
    """The id of a tapped reply button or list row, or a template quick-reply payload."""

    MEDIA_TYPES: ClassVar[frozenset[str]] = frozenset({"image", "document", "audio", "video", "sticker"})

    @property
    def is_media(self) -> bool:
        return self.type in self.MEDIA_TYPES

    @property
    def is_text_like(self) -> bool:
        """Typed text or a tap whose title is text: what keywords and patterns look at."""
        return self.type in TEXT_LIKE_TYPES

    @classmethod
    def of_text(cls, text: str) -> Event:
        """A typed text message (handy for the simulator and tests)."""
        return cls(type="text", text=text)

    @classmethod
    def of_reply(cls, reply_id: str, title: str | None = None) -> Event:
        """A tapped reply button or list row."""
        return cls(type="interactive", text=title, reply_id=reply_id)


@dataclass(frozen=True)
class Customer:
    """Who wrote: their phone (None for a customer known only by their BSUID), name (may be unknown),
    language code ("en", "es", "zh") and, when they are stored, their customer id (what the actions key
    their orders, appointments and handoffs on)."""

    wa_id: str | None
    name: str | None
    language: str
    id: int | None = None
