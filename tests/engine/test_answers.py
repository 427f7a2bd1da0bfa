"""Reading customers' answers the way they type them: numbers, dates, times and choices."""

from __future__ import annotations

from datetime import date

import pytest

from bot.engine import Event
from bot.engine.answers import read_choice, read_date, read_number, read_time

WEDNESDAY = date(2026, 11, 25)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        (" 12 ", 12),
        ("3,5", 3.5),
        ("about 2 phones", 2),
        ("-1", -1),
        ("two", None),
        ("1 or 2", None),
    ],
)
def test_numbers(text: str, expected: float | None) -> None:
    assert read_number(text) == expected


@pytest.mark.parametrize(
    ("text", "order", "expected"),
    [
        ("today", "DMY", date(2026, 11, 25)),
        ("Mañana", "DMY", date(2026, 11, 26)),
        ("明天", "DMY", date(2026, 11, 26)),
        ("pasado mañana", "DMY", date(2026, 11, 27)),
        ("Friday", "DMY", date(2026, 11, 27)),
        ("wednesday", "DMY", date(2026, 11, 25)),
        ("lunes", "DMY", date(2026, 11, 30)),
        ("星期一", "DMY", date(2026, 11, 30)),
        ("2026-12-03", "MDY", date(2026, 12, 3)),
        ("3/12", "DMY", date(2026, 12, 3)),
        ("12/3", "MDY", date(2026, 12, 3)),
        ("25/12", "MDY", date(2026, 12, 25)),  # only one way to read it
        ("3/1", "DMY", date(2027, 1, 3)),  # January has passed this year: next January
        ("12月3日", "DMY", date(2026, 12, 3)),
        ("31/2", "DMY", None),
        ("soon", "DMY", None),
    ],
)
def test_dates(text: str, order: str, expected: date | None) -> None:
    assert read_date(text, WEDNESDAY, order) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("14:30", "14:30"),
        ("2:30pm", "14:30"),
        ("2 PM", "14:00"),
        ("12am", "00:00"),
        ("9.15", "09:15"),
        ("17h", "17:00"),
        ("下午3点半", "15:30"),
        ("3", None),
        ("25:00", None),
        ("13pm", None),
    ],
)
def test_times(text: str, expected: str | None) -> None:
    assert read_time(text) == expected


def test_choices_by_tap_by_name_and_by_their_words() -> None:
    choices = {"apple": ["iphone"], "samsung": ["galaxy"], "other": []}
    assert read_choice(choices, Event.of_reply("samsung", "Samsung")) == "samsung"
    assert read_choice(choices, Event.of_text("My IPHONE 12")) == "apple"
    assert read_choice(choices, Event.of_text("a Galaxy S21")) == "samsung"
    assert read_choice(choices, Event.of_text("nokia")) is None
    assert read_choice(choices, Event(type="image", text="apple")) is None
