"""What the customer is told about a handoff, in their language: how long the wait is, and the guards'
apology. The wait comes from the queue and the technicians' working hours."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.appointments.dates import day_label, time_label
from bot.settings import Settings, Weekday

WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LOOK_AHEAD_DAYS = 14

WAIT = {
    "en": "Thanks! A technician will answer you here in about {minutes} minutes.",
    "es": "¡Gracias! Un técnico te responderá por aquí en unos {minutes} minutos.",
    "zh": "谢谢！技术员大约 {minutes} 分钟内会在这里回复您。",
}
CLOSED = {
    "en": "Thanks! Our technicians are away right now. "
    "We open {day} at {time}; a technician will answer you then.",
    "es": "¡Gracias! Ahora mismo no hay técnicos disponibles. "
    "Abrimos el {day} a las {time}; un técnico te responderá entonces.",
    "zh": "谢谢！技术员目前不在。我们将于{day} {time}开门，届时技术员会回复您。",
}
UNCLAIMED = {
    "en": "Sorry for the wait! 🙏 All our technicians are busy right now. "
    "Leave us a message here with your question and we'll get back to you as soon as we can.",
    "es": "¡Perdona la espera! 🙏 Todos nuestros técnicos están ocupados ahora mismo. "
    "Déjanos aquí un mensaje con tu consulta y te responderemos lo antes posible.",
    "zh": "抱歉让您久等了！🙏 我们的技术员目前都很忙。请在这里留言说明您的问题，我们会尽快回复您。",
}
IDLE_NOTE = "Given back to the bot after {minutes:g} minutes without a message either way."


def base_language(language: str | None) -> str:
    return (language or "en").split("_")[0].split("-")[0].lower()


def pick(texts: dict[str, str], language: str | None) -> str:
    return texts.get(base_language(language), texts["en"])


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
    hours: WorkingHours, now: datetime, waiting: int, minutes_per_chat: float, language: str | None
) -> str:
    """`waiting`: chats in the queue, this one included."""
    opens = hours.next_open(now)
    if opens is not None:
        return pick(CLOSED, language).format(
            day=day_label(opens.date(), language), time=time_label(opens, language)
        )
    minutes = max(1, math.ceil(minutes_per_chat * max(1, waiting)))
    return pick(WAIT, language).format(minutes=minutes)
