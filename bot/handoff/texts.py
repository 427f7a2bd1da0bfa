"""What the customer is told about a handoff: how long the wait is, from the queue and the technicians'
working hours. The words are templates/texts/handoff.yaml; the note technicians get is here."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.appointments.dates import day_label, time_label
from bot.engine.texts import TextCatalog
from bot.settings import Settings, Weekday

WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LOOK_AHEAD_DAYS = 14

IDLE_NOTE = "Given back to the bot after {minutes:g} minutes without a message either way."
"""For the technician who had the chat (staff read English), so it stays here, not in texts/."""


class WorkingHours:
    """When technicians answer: handoff.working_hours, else the appointments' opening hours."""

    def __init__(self, settings: Settings) -> None:
        hours = settings.handoff.working_hours
        self.hours = hours if hours is not None else settings.appointments.opening_hours
        self.closed_days: frozenset[date] = (
            frozenset() if hours is not None else frozenset(settings.appointments.closed_days)
        )
        self.zone = ZoneInfo(settings.shop.timezone)

    def _ranges(self, day: date) -> list[tuple[time, time]]:
        if day in self.closed_days:
            return []
        return list(self.hours.get(WEEKDAYS[day.weekday()], []))

    def next_open(self, now: datetime) -> datetime | None:
        """None when technicians are working at `now`; else when they start next (within two weeks)."""
        local = now.astimezone(self.zone)
        for start, end in self._ranges(local.date()):
            if start <= local.time() < end:
                return None
        for offset in range(LOOK_AHEAD_DAYS + 1):
            day = local.date() + timedelta(days=offset)
            for start, _ in self._ranges(day):
                opens = datetime.combine(day, start, self.zone)
                if opens > local:
                    return opens
        return None  # no hours configured at all: do not claim the shop is closed


def wait_text(
    texts: TextCatalog,
    hours: WorkingHours,
    now: datetime,
    waiting: int,
    minutes_per_chat: float,
    language: str | None,
    default: str,
) -> str:
    """`waiting`: chats in the queue, this one included."""
    opens = hours.next_open(now)
    if opens is not None:
        day, time = day_label(opens.date(), language), time_label(opens, language)
        return texts.say("handoff.closed", language, default, day=day, time=time)
    minutes = max(1, math.ceil(minutes_per_chat * max(1, waiting)))
    return texts.say("handoff.wait", language, default, minutes=minutes)
