"""The shop's bookable slots, as pure functions of the settings: no database, no clock of their own.

Slots are wall times in the shop's zone (a 09:00 slot is at 09:00 in winter and in summer), built with
zoneinfo and converted, so a daylight-saving change neither invents nor doubles one: on the spring-forward
day the wall times that do not exist (02:00-02:59 in New York) are skipped, and on the fall-back day the
hour that happens twice (01:00-01:59) is offered once, in its first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.settings import WEEKDAYS, AppointmentSettings


def local_moment(day: date, wall: time, zone: ZoneInfo) -> datetime | None:
    """`wall` on `day` in `zone` (the first one when it happens twice); None when it does not exist."""
    moment = datetime.combine(day, wall, tzinfo=zone)  # fold=0: the earlier of two, if there are two
    round_trip = moment.astimezone(UTC).astimezone(zone)
    if round_trip.replace(tzinfo=None) != moment.replace(tzinfo=None):
        return None  # skipped by a spring-forward change
    return moment


def next_wall_time(after: datetime, wall: time, zone: ZoneInfo) -> datetime:
    """The first moment at or after `after` whose wall time in `zone` is `wall`. On a day that skips
    that wall time it is shifted forward by the gap (02:30 on a spring-forward night is 03:30)."""
    local = after.astimezone(zone)
    for shift in range(3):
        day = local.date() + timedelta(days=shift)
        moment = local_moment(day, wall, zone)
        if moment is None:  # in a spring-forward gap: shifted forward by the gap
            moment = datetime.combine(day, wall, tzinfo=zone).astimezone(UTC).astimezone(zone)
        if moment >= after:
            return moment
    raise AssertionError("unreachable: a wall time recurs within a day or two")


def is_open_day(day: date, rules: AppointmentSettings) -> bool:
    return day not in rules.closed_days and bool(rules.opening_hours.get(WEEKDAYS[day.weekday()]))


def day_slots(day: date, rules: AppointmentSettings, zone: ZoneInfo) -> list[datetime]:
    """Every slot start of `day` (aware, in `zone`), ignoring bookings and the clock."""
    if not is_open_day(day, rules):
        return []
    length = timedelta(minutes=rules.slot_minutes)
    slots: dict[datetime, datetime] = {}  # keyed by the UTC instant: never compare wall times across folds
    for start, end in rules.opening_hours.get(WEEKDAYS[day.weekday()], []):
        for wall in _walls(start, end, length):
            moment = local_moment(day, wall, zone)
            if moment is not None:
                slots.setdefault(moment.astimezone(UTC), moment)
    return [slots[instant] for instant in sorted(slots)]


def _walls(start: time, end: time, length: timedelta) -> Iterator[time]:
    """Wall-clock slot starts from `start` while a whole slot fits before `end` (same day)."""
    anchor = date(2000, 1, 3)  # any day: this is wall-clock arithmetic, zones come later
    cursor, last = datetime.combine(anchor, start), datetime.combine(anchor, end)
    while cursor + length <= last:
        yield cursor.time()
        cursor += length


def is_slot(moment: datetime, rules: AppointmentSettings, zone: ZoneInfo) -> bool:
    """Whether `moment` is the start of one of the shop's slots (open day, on the grid)."""
    instant = moment.astimezone(UTC)
    local = moment.astimezone(zone)
    return any(slot.astimezone(UTC) == instant for slot in day_slots(local.date(), rules, zone))


def bookable_window(now: datetime, rules: AppointmentSettings, zone: ZoneInfo) -> tuple[datetime, date]:
    """The earliest start a customer may book now, and the last day they may book."""
    today = now.astimezone(zone).date()
    return now + timedelta(minutes=rules.min_notice_minutes), today + timedelta(days=rules.days_ahead)


def days_ahead(now: datetime, rules: AppointmentSettings, zone: ZoneInfo) -> list[date]:
    """Today and the following `days_ahead` days, in the shop's zone."""
    today = now.astimezone(zone).date()
    return [today + timedelta(days=n) for n in range(rules.days_ahead + 1)]


def free(
    slots: Iterable[datetime], taken: dict[datetime, int], capacity: int, earliest: datetime
) -> list[datetime]:
    """The slots at or after `earliest` with a seat left (`taken`: seats held per slot start, UTC)."""
    return [
        slot
        for slot in slots
        if slot.astimezone(UTC) >= earliest.astimezone(UTC) and taken.get(slot.astimezone(UTC), 0) < capacity
    ]
