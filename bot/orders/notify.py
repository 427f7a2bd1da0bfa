"""Which message tells a customer about their order's new status, if any.

Inside the 24-hour customer service window it is the status's own text, in the customer's language;
outside it WhatsApp delivers only approved templates, so it is `order_status_update` with the order
number and the status's label. The window is judged a little short of 24 hours: the message is sent
moments after it is queued, and a free text that crosses the edge on the way is refused (131047).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.db.models import Customer, Order
from bot.engine.texts import pick_language, pick_text
from bot.orders.texts import OrderTexts
from bot.outbox import CUSTOMER_SERVICE_WINDOW
from bot.whatsapp.outbound import OutboundMessage, Template, Text

STATUS_TEMPLATE = "order_status_update"
SEND_MARGIN = timedelta(seconds=30)
"""Room between queueing a free text and its send, so it is not refused at the window's edge."""

PerLanguage = str | Mapping[str, str]


@dataclass(frozen=True)
class StatusNotifier:
    texts: OrderTexts | None
    """None: no texts file; every notification is the template."""
    notify: Mapping[str, bool]
    """Status name -> whether entering it tells the customer."""
    default_language: str
    template_languages: tuple[str, ...]
    """The languages `order_status_update` is approved in; empty when the template file is not here."""
    address: PerLanguage = ""
    opening_hours: PerLanguage = ""
    window: timedelta = CUSTOMER_SERVICE_WINDOW - SEND_MARGIN

    def message_for(self, order: Order, customer: Customer | None, now: datetime) -> OutboundMessage | None:
        """The notification for the status `order` is now in, or None when that status stays quiet."""
        if not self.notify.get(order.status, False):
            return None
        language = (customer.language if customer else None) or self.default_language
        last_inbound = customer.last_inbound_at if customer else None
        if self.texts is not None and last_inbound is not None and now - last_inbound <= self.window:
            body = self.texts.text(order.status, language, self.values(order, language))
            if body:
                return Text(body=body)
        template_language = (
            pick_language(self.template_languages, language, self.default_language) or language
        )
        label = self.texts.label(order.status, template_language) if self.texts else order.status
        return Template(
            name=STATUS_TEMPLATE,
            language=template_language,
            body_params=(order.order_number, label),
        )

    def values(self, order: Order, language: str) -> dict[str, str]:
        return {
            "order_number": order.order_number,
            "device_model": order.device_model,
            "customer_name": order.customer_name,
            "address": pick_text(self.address, language, self.default_language),
            "opening_hours": pick_text(self.opening_hours, language, self.default_language),
        }
