"""Which message tells a customer about their order's new status, if any.

Inside the 24-hour customer service window it is the status's own text, in the customer's language;
outside it WhatsApp delivers only approved templates, so it is `order_status_update` with the order
number and the status's label. The choice between the two is the shared rule in bot/notices.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.db.models import Customer, Order
from bot.engine.content import Content, ContentSource
from bot.engine.texts import pick_text
from bot.notices import WINDOW, PerLanguage, WindowRule
from bot.orders.texts import order_texts
from bot.whatsapp.outbound import OutboundMessage, Template

STATUS_TEMPLATE = "order_status_update"


@dataclass(frozen=True)
class StatusNotifier:
    content: ContentSource
    """The texts (order_statuses.yaml: none, every notification is the template) and the template's
    languages: the content served now."""
    notify: Mapping[str, bool]
    """Status name -> whether entering it tells the customer."""
    default_language: str
    address: PerLanguage = ""
    opening_hours: PerLanguage = ""
    window: timedelta = WINDOW

    def rule(self, content: Content) -> WindowRule:
        template = content.templates.get(STATUS_TEMPLATE)
        languages = tuple(template.languages) if template else ()  # none: the file is not in templates/
        return WindowRule(self.default_language, languages, self.window)

    def message_for(self, order: Order, customer: Customer | None, now: datetime) -> OutboundMessage | None:
        """The notification for the status `order` is now in, or None when that status stays quiet."""
        if not self.notify.get(order.status, False):
            return None
        content = self.content()
        texts = order_texts(content.texts)

        def text(language: str) -> str | None:
            return texts.text(order.status, language, self.values(order, language)) if texts else None

        def template(language: str) -> Template:
            label = texts.label(order.status, language) if texts else order.status
            return Template(name=STATUS_TEMPLATE, language=language, body_params=(order.order_number, label))

        return self.rule(content).message(customer, now, text, template)

    def values(self, order: Order, language: str) -> dict[str, str]:
        return {
            "order_number": order.order_number,
            "device_model": order.device_model,
            "customer_name": order.customer_name,
            "address": pick_text(self.address, language, self.default_language),
            "opening_hours": pick_text(self.opening_hours, language, self.default_language),
        }
