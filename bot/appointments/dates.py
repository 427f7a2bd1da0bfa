"""Dates and times as customers read them, per language, without the machine's locale.

"Tue 2 Dec" / "mar 2 dic" / "12月2日 周二", and "2:30 PM" / "14:30" / "14:30": small tables rather than
the C library's locales, which a server may not have installed.
"""

from __future__ import annotations

from datetime import date, datetime

from bot.engine.texts import pick_language

_WEEKDAYS = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "es": ("lun", "mar", "mié", "jue", "vie", "sáb", "dom"),
    "zh": ("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
}
_MONTHS = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "es": ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic"),
}


def _base(language: str | None) -> str:
    return pick_language(_WEEKDAYS, language) or "en"


def day_label(day: date, language: str | None) -> str:
    """'Tue 2 Dec', 'mar 2 dic', '12月2日 周二'."""
    base = _base(language)
    weekday = _WEEKDAYS[base][day.weekday()]
    if base == "zh":
        return f"{day.month}月{day.day}日 {weekday}"
    return f"{weekday} {day.day} {_MONTHS[base][day.month - 1]}"


def time_label(moment: datetime, language: str | None) -> str:
    """'2:30 PM' in English, '14:30' in Spanish and Chinese (the wall time of `moment` as given)."""
    if _base(language) == "en":
        hour = moment.hour % 12 or 12
        return f"{hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"
    return f"{moment.hour:02d}:{moment.minute:02d}"


def when_label(moment: datetime, language: str | None) -> str:
    """'Tue 2 Dec, 2:30 PM'."""
    return f"{day_label(moment.date(), language)}, {time_label(moment, language)}"
