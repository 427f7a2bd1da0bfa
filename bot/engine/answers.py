"""Reading a customer's answer to an `ask`: a number, a date or a time in the shop's time zone, one of
several choices, or text that fits a pattern.

Customers type the way they speak ("tomorrow", "2pm", "mañana a las 5" is too much, "25/12" is fine),
so each reader accepts the common forms in English, Spanish and Chinese and returns the value in one
stored form (numbers as numbers, dates as 2026-12-25, times as 14:30), or None when it does not fit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from bot.engine.events import Event
from bot.engine.schema import AskSpec
from bot.engine.words import keyword_regex, normalize

DateOrder = Literal["DMY", "MDY", "YMD"]

_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")
_RELATIVE_DAYS: dict[str, int] = {
    "today": 0,
    "hoy": 0,
    "今天": 0,
    "今日": 0,
    "tomorrow": 1,
    "manana": 1,
    "明天": 1,
    "day after tomorrow": 2,
    "pasado manana": 2,
    "后天": 2,
    "後天": 2,
}
_WEEKDAYS: dict[str, int] = {}
for _index, _names in enumerate(
    (
        ("monday", "mon", "lunes", "周一", "星期一", "礼拜一"),
        ("tuesday", "tue", "tues", "martes", "周二", "星期二", "礼拜二"),
        ("wednesday", "wed", "miercoles", "周三", "星期三", "礼拜三"),
        ("thursday", "thu", "thur", "thurs", "jueves", "周四", "星期四", "礼拜四"),
        ("friday", "fri", "viernes", "周五", "星期五", "礼拜五"),
        ("saturday", "sat", "sabado", "周六", "星期六", "礼拜六"),
        ("sunday", "sun", "domingo", "周日", "星期日", "星期天", "礼拜天", "周天"),
    )
):
    for _name in _names:
        _WEEKDAYS[_name] = _index
_ISO_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_SHORT_DATE = re.compile(r"(\d{1,2})[-/.](\d{1,2})(?:[-/.](\d{2,4}))?")
_CHINESE_DATE = re.compile(r"(?:(\d{4})年)?\s*(\d{1,2})月\s*(\d{1,2})[日号號]?")
_TIME = re.compile(r"(\d{1,2})(?:\s*[:.h]\s*(\d{2}))?\s*(a\.?m\.?|p\.?m\.?|h)?(?![\d])", re.IGNORECASE)
_CHINESE_TIME = re.compile(r"(上午|早上|中午|下午|晚上)?\s*(\d{1,2})\s*[点點时時](?:\s*(\d{1,2})\s*分?|半)?")


@dataclass(frozen=True)
class Answer:
    """What an answer saved: the variable's value, plus named groups of a pattern."""

    value: Any
    captures: Mapping[str, str] = field(default_factory=dict)


def read_answer(ask: AskSpec, event: Event, today: date, order: DateOrder = "DMY") -> Answer | None:
    """The answer's value when it fits the `ask`, else None."""
    if ask.choices is not None:
        choice = read_choice(ask.choices, event)
        return Answer(choice) if choice is not None else None
    # a tapped row of a list an action built (its id is the value: an order number, a slot)
    text = (event.reply_id if event.reply_id is not None else event.text or "").strip()
    if not text or not event.is_text_like:
        return None
    captures: dict[str, str] = {}
    if ask.pattern is not None:
        found = re.search(ask.pattern, text, re.IGNORECASE)
        if not found:
            return None
        captures = {k: v for k, v in found.groupdict().items() if v is not None}
    value: Any
    if ask.expect == "number":
        value = read_number(text)
        if value is None or (ask.min is not None and value < ask.min):
            return None
        if ask.max is not None and value > ask.max:
            return None
    elif ask.expect == "date":
        day = read_date(text, today, order)
        if day is None:
            return None
        value = day.isoformat()
    elif ask.expect == "time":
        value = read_time(text)
        if value is None:
            return None
    else:
        value = text
    return Answer(value, captures)


def read_choice(choices: Mapping[str, list[str]], event: Event) -> str | None:
    """A tapped button or row whose id is the choice, or text naming the choice or one of its words."""
    if event.reply_id is not None and event.reply_id in choices:
        return event.reply_id
    if not event.text or not event.is_text_like:
        return None
    text = normalize(event.text)
    for choice, words in choices.items():
        if keyword_regex([choice, *words]).search(text):
            return choice
    return None


def read_number(text: str) -> int | float | None:
    """The one number in the text ("3", "3,5", "about 12"); None when there are none or several."""
    found = _NUMBER.findall(text)
    if len(found) != 1:
        return None
    number = float(found[0].replace(",", "."))
    return int(number) if number.is_integer() else number


def read_date(text: str, today: date, order: DateOrder = "DMY") -> date | None:
    """today/tomorrow, a weekday (the next one, today included), 2026-12-25, 25/12 or 12/25, 12月25日."""
    words = normalize(text).rstrip(".!")
    if words in _RELATIVE_DAYS:
        return today + timedelta(days=_RELATIVE_DAYS[words])
    for name, weekday in _WEEKDAYS.items():
        if keyword_regex([name]).fullmatch(words) or words in (f"next {name}", f"el {name}", f"este {name}"):
            return today + timedelta(days=(weekday - today.weekday()) % 7)
    if found := _ISO_DATE.search(text):
        return _date(int(found[1]), int(found[2]), int(found[3]), today)
    if found := _CHINESE_DATE.search(text):
        return _date(int(found[1]) if found[1] else None, int(found[2]), int(found[3]), today)
    if found := _SHORT_DATE.search(text):
        first, second = int(found[1]), int(found[2])
        year = int(found[3]) if found[3] else None
        if year is not None and year < 100:
            year += 2000
        day, month = (second, first) if order == "MDY" else (first, second)
        # 25/12 in a month-first shop can only be 25 December: take the order that makes a date
        return _date(year, month, day, today) or _date(year, day, month, today)
    return None


def _date(year: int | None, month: int, day: int, today: date) -> date | None:
    """A date without a year is the next one to come (a 3 January asked in December is next year's)."""
    try:
        found = date(year or today.year, month, day)
    except ValueError:
        return None
    if year is None and found < today:
        try:
            found = found.replace(year=found.year + 1)
        except ValueError:
            return None
    return found


def read_time(text: str) -> str | None:
    """14:30, 2:30pm, 2 pm, 14h, 14h30, 下午3点半 -> "HH:MM"; None when it is not a time of day."""
    if found := _CHINESE_TIME.search(text):
        hour = int(found[2])
        minute = 30 if found[0].endswith("半") else int(found[3] or 0)
        if found[1] in ("下午", "晚上") and hour < 12:
            hour += 12
        return _clock(hour, minute)
    found = _TIME.search(text.strip())
    if not found or (found[2] is None and found[3] is None):
        return None  # a bare number is not a time: "3" could be anything
    hour, minute = int(found[1]), int(found[2] or 0)
    suffix = (found[3] or "").lower().replace(".", "")
    if suffix in ("am", "pm"):
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if suffix == "pm" else 0)
    return _clock(hour, minute)


def _clock(hour: int, minute: int) -> str | None:
    return f"{hour:02d}:{minute:02d}" if 0 <= hour < 24 and 0 <= minute < 60 else None
