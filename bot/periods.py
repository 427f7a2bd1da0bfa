"""The shop's days, weeks and months as UTC ranges, and where a zone's UTC offset changes within one.

Reports count per shop day (bot/stats.py, the cost ledger): a message at 23:30 in Madrid belongs to that
day although it is the next one in UTC. The database does the bucketing (bot/db/sql.local_day), with
`offsets` here saying where the zone's UTC offset changes within a range (daylight saving: a few cuts
a year); Python only sees one row per bucket.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Group = Literal["day", "week", "month"]
GROUPS: tuple[Group, ...] = ("day", "week", "month")
MAX_DAYS = 3700
"""The longest range a report covers (about ten years): its buckets are held in memory."""
_STEP = timedelta(hours=1)


@dataclass(frozen=True)
class Range:
    """Shop days [first, end): `end` is the day after the last one."""

    first: date
    end: date
    zone: ZoneInfo

    def __post_init__(self) -> None:
        if self.end <= self.first:
            raise ValueError("the range ends before it starts")
        if (self.end - self.first).days > MAX_DAYS:
            raise ValueError(f"the range is longer than {MAX_DAYS} days")

    @property
    def start_utc(self) -> datetime:
        return local_midnight(self.first, self.zone)

    @property
    def end_utc(self) -> datetime:
        return local_midnight(self.end, self.zone)

    def days(self) -> Iterator[date]:
        day = self.first
        while day < self.end:
            yield day
            day += timedelta(days=1)

    def periods(self, group: Group) -> list[str]:
        """Every period's key in order, the empty ones too."""
        return list(dict.fromkeys(period_key(day, group) for day in self.days()))


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant a shop day starts (a zone whose midnight is skipped starts at the first hour)."""
    local = datetime.combine(day, time(0), tzinfo=zone)
    return local.astimezone(UTC)


def month_range(year: int, month: int, zone: ZoneInfo) -> Range:
    first = date(year, month, 1)
    end = date(year + (month == 12), month % 12 + 1, 1)
    return Range(first, end, zone)


def period_key(day: date, group: Group) -> str:
    """'2026-11-25' (day), the Monday '2026-11-23' (week), '2026-11' (month)."""
    if group == "day":
        return day.isoformat()
    if group == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    return f"{day:%Y-%m}"


def offsets(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[datetime, int]]:
    """[(from this instant, the zone's UTC offset in minutes)], the first at `start`: where the offset
    changes within [start, end). Found hour by hour, then to the second."""

    def offset(at: datetime) -> int:
        delta = at.astimezone(zone).utcoffset()
        return int(delta.total_seconds() // 60) if delta else 0

    found = [(start, offset(start))]
    at = start
    while at < end:
        following = min(at + _STEP, end)
        if offset(following) != found[-1][1]:
            low, high = at, following  # the change is in (low, high]
            while (high - low) > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if offset(middle) == found[-1][1]:
                    low = middle
                else:
                    high = middle
            found.append((high.replace(microsecond=0), offset(following)))
        at = following
    return found
