"""What the order tests share: settings with the shipped templates, a started service, order payloads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.db import close_db, init_db
from bot.orders.service import OrderService
from bot.orders.setup import build_order_service
from bot.settings import Settings
from tests.helpers import REPO, make_settings, shop_content

TEMPLATES = f"templates:\n  directory: {REPO / 'templates'}\n"
SHOP = "  address: 1 Test Street\n  opening_hours: {en: 9-5 weekdays, es: 9-17 entre semana}\n"
PHONE = "15550001234"


def order_settings(tmp_path: Path, database_url: str, extra: str = "") -> Settings:
    return make_settings(tmp_path, database_url, extra=TEMPLATES + extra)


@asynccontextmanager
async def started_service(settings: Settings, wakes: list[int] | None = None) -> AsyncIterator[OrderService]:
    await init_db(settings.database_url)
    try:
        yield build_order_service(
            settings, shop_content(settings), on_queued=lambda: wakes.append(1) if wakes is not None else None
        )
    finally:
        await close_db()


def order_json(number: str = "R-1001", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_number": number,
        "customer_phone": "+1 (555) 000-1234",
        "customer_name": "Ana",
        "device_model": "iPhone 13",
        "problem": "cracked screen",
        "status": "received",
        "quoted_price": "129.00",
        "technician": "Sam",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not ...}
