"""Messages the shop starts, not replies (an order's new status, an appointment staff moved): which one
goes, a free text or an approved template.

Inside the customer's 24-hour service window it is a text in their language; outside it WhatsApp
delivers only approved templates, so it is the template, in the language of it that `pick_language`
chooses for the customer (theirs, its base, the shop's, English, the first approved). The window is
judged a little short of 24 hours: the message is sent moments after it is queued, and a free text that
crosses the edge on the way is refused (131047).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.db.models import Customer
from bot.engine.texts import pick_language
from bot.outbox import CUSTOMER_SERVICE_WINDOW
from bot.whatsapp.outbound import OutboundMessage, Template, Text

SEND_MARGIN = timedelta(seconds=30)
"""Room between queueing a free text and its send, so it is not refused at the window's edge."""
WINDOW = CUSTOMER_SERVICE_WINDOW - SEND_MARGIN

PerLanguage = str | Mapping[str, str]


@dataclass(frozen=True)
class WindowRule:
    default_language: str
    template_languages: tuple[str, ...]
    """The languages the template is approved in, as written; empty when its file is not in templates/."""
    window: timedelta = WINDOW

    def language(self, customer: Customer | None) -> str:
        return (customer.language if customer else None) or self.default_language

    def in_window(self, customer: Customer | None, now: datetime) -> bool:
        last_inbound = customer.last_inbound_at if customer else None
        return last_inbound is not None and now - last_inbound <= self.window

    def template_language(self, language: str) -> str:
        return pick_language(self.template_languages, language, self.default_language) or language

    def message(
        self,
        customer: Customer | None,
        now: datetime,
        text: Callable[[str], str | None],
        template: Callable[[str], Template],
    ) -> OutboundMessage:
        """`text(language)` inside the window (when it has one for that language), else
        `template(language the template is approved in)`."""
        language = self.language(customer)
        if self.in_window(customer, now):
            body = text(language)
            if body:
                return Text(body=body)
        return template(self.template_language(language))
