"""What the appointment tests share: settings in New York's zone, a controllable clock, a started DB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.db import close_db, init_db
from bot.settings import Settings
from tests.helpers import REPO

NEW_YORK = ZoneInfo("America/New_York")
PHONE = "15550001234"
OTHER = "15550005678"
WEEKDAY = ["09:00-12:00", "14:00-15:00"]


def ny(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A wall time in New York (fold=0: the first of two on the fall-back day)."""
    return datetime(year, month, day, hour, minute, tzinfo=NEW_YORK)


def appointment_settings(database_url: str = "sqlite://:memory:", **rules: Any) -> Settings:
    appointments: dict[str, Any] = {
        "slot_minutes": 30,
        "capacity": 2,
        "opening_hours": {day: WEEKDAY for day in ("mon", "tue", "wed", "thu", "fri")}
        | {"sat": [], "sun": []},
        "closed_days": [],
        "days_ahead": 14,
        "min_notice_minutes": 60,
        "reminders": ["24h", "2h"],
        "quiet_hours": None,
    }
    appointments.update(rules)
    return Settings.model_validate(
        {
            "shop": {"timezone": "America/New_York", "default_language": "en"},
            "database": {"url": database_url},
            "templates": {"directory": str(REPO / "templates")},
            "appointments": appointments,
        }
    )


@asynccontextmanager
async def database(database_url: str) -> AsyncIterator[None]:
    await init_db(database_url)
    try:
        yield
    finally:
        await close_db()


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)
