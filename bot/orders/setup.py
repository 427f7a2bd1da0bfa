"""The order service built from the settings, the same for the server and the CLI import."""

from __future__ import annotations

from collections.abc import Callable

from bot.engine.templates import load_templates
from bot.orders.notify import STATUS_TEMPLATE, StatusNotifier
from bot.orders.service import OrderService
from bot.orders.texts import load_order_texts
from bot.settings import Settings


def build_order_service(settings: Settings, on_queued: Callable[[], None] = lambda: None) -> OrderService:
    statuses = [status.name for status in settings.orders.statuses]
    return OrderService(statuses, build_status_notifier(settings), on_queued=on_queued)


def build_status_notifier(settings: Settings) -> StatusNotifier:
    """Reads templates/texts/order_statuses.yaml (OrderTextsError when it is invalid) and the
    order_status_update template's languages."""
    statuses = [status.name for status in settings.orders.statuses]
    texts = load_order_texts(settings.templates_dir, statuses, settings.shop.default_language)
    catalog, _ = load_templates(settings.templates_dir)  # template problems are reported with the flows'
    template = catalog.get(STATUS_TEMPLATE)
    notifier = StatusNotifier(
        texts=texts,
        notify={status.name: status.notify for status in settings.orders.statuses},
        default_language=settings.shop.default_language,
        template_languages=tuple(template.languages) if template else (),
        address=settings.shop.address,
        opening_hours=settings.shop.opening_hours,
    )
    return notifier
