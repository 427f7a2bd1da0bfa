"""The order service built from the settings, the same for the server and the CLI import."""

from __future__ import annotations

from collections.abc import Callable

from bot.engine.content import ContentSource
from bot.engine.texts import TextsFile
from bot.orders.notify import StatusNotifier
from bot.orders.service import OrderService
from bot.orders.texts import OrderTexts, order_texts_file
from bot.settings import Settings


def build_order_service(
    settings: Settings, content: ContentSource, on_queued: Callable[[], None] = lambda: None
) -> OrderService:
    statuses = [status.name for status in settings.orders.statuses]
    return OrderService(statuses, build_status_notifier(settings, content), on_queued=on_queued)


def build_status_notifier(settings: Settings, content: ContentSource) -> StatusNotifier:
    """`content`: the served one, with order_statuses.yaml read by `status_texts_file(settings)`."""
    return StatusNotifier(
        content=content,
        notify={status.name: status.notify for status in settings.orders.statuses},
        default_language=settings.shop.default_language,
        address=settings.shop.address,
        opening_hours=settings.shop.opening_hours,
    )


def status_texts_file(settings: Settings) -> TextsFile[OrderTexts]:
    """templates/texts/order_statuses.yaml, checked against settings.yaml's statuses and language."""
    statuses = [status.name for status in settings.orders.statuses]
    return order_texts_file(statuses, settings.shop.default_language)
