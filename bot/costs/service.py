"""The month's cost from the database, the budget's state, and Meta's messaging limit in use.

`month_report` counts the ledger (or, per_type, the messages sent) in one grouped query by shop day and
prices the groups (report.py). `CostWatch` keeps the current month's spend for a minute at a time, for
the outbox's budget check and /metrics, and logs the budget's 80% and 100% once a month per process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from bot.costs.limits import MESSAGING_LIMIT_HELD
from bot.costs.report import Counted, MonthCost, month_cost, per_type_settings
from bot.costs.settings import CostSettings
from bot.db.models import AccountState, DeliveryStatus, Direction, Message
from bot.db.sql import as_datetime, fetch, on_sqlite, scalar
from bot.periods import Range, local_day_sql, month_range

log = logging.getLogger(__name__)

MESSAGING_LIMIT_KEY = "messaging_limit"
WARN_LEVELS = (Decimal("0.8"), Decimal("1.0"))
CACHE_SECONDS = 60.0


def parse_month(text: str) -> tuple[int, int]:
    """'2026-11' -> (2026, 11); ValueError otherwise."""
    year, dash, month = text.partition("-")
    if not (dash and len(year) == 4 and year.isdigit() and len(month) == 2 and month.isdigit()):
        raise ValueError("a month is YYYY-MM, e.g. 2026-11")
    number = int(month)
    if not 1 <= number <= 12 or not 2000 <= int(year) <= 2999:
        raise ValueError("a month is YYYY-MM, e.g. 2026-11")
    return int(year), number


async def _ledger_groups(span: Range) -> tuple[list[Counted], int]:
    start, end = span.start_utc, span.end_utc
    day_sql, day_params = local_day_sql("at", on_sqlite(), span.zone, start, end)
    rows = await fetch(
        f"SELECT {day_sql} AS day, category, pricing_type, market, template, flow, COUNT(*) AS n"
        " FROM cost_entry WHERE at >= ? AND at < ? GROUP BY 1, 2, 3, 4, 5, 6",
        [*day_params, start, end],
    )
    conversations = await scalar(
        "SELECT COUNT(DISTINCT customer_id) FROM cost_entry WHERE at >= ? AND at < ?", [start, end]
    )
    groups = [
        Counted(
            date.fromisoformat(str(row["day"])),
            str(row["category"]),
            row["pricing_type"],
            str(row["market"]),
            row["template"],
            row["flow"],
            int(row["n"]),
        )
        for row in rows
    ]
    return groups, int(conversations or 0)


async def _sent_groups(span: Range) -> tuple[list[Counted], int]:
    """per_type: outbound messages Meta accepted in the month, by shop day and type."""
    start, end = span.start_utc, span.end_utc
    day_sql, day_params = local_day_sql("sent_at", on_sqlite(), span.zone, start, end)
    rows = await fetch(
        f"SELECT {day_sql} AS day, message_type, COUNT(*) AS n FROM message"
        " WHERE message_direction = 'outbound' AND sent_at >= ? AND sent_at < ? GROUP BY 1, 2",
        [*day_params, start, end],
    )
    conversations = await scalar(
        "SELECT COUNT(DISTINCT customer_id) FROM message WHERE message_direction = 'outbound'"
        " AND sent_at >= ? AND sent_at < ?",
        [start, end],
    )
    groups = [
        Counted(
            date.fromisoformat(str(r["day"])), str(r["message_type"]), "regular", "*", None, None, int(r["n"])
        )
        for r in rows
    ]
    return groups, int(conversations or 0)


async def month_report(costs: CostSettings, zone: ZoneInfo, year: int, month: int) -> MonthCost:
    span = month_range(year, month, zone)
    label = f"{year:04d}-{month:02d}"
    if costs.model == "per_type":
        groups, conversations = await _sent_groups(span)
        return month_cost(label, groups, conversations, per_type_settings(costs))
    groups, conversations = await _ledger_groups(span)
    return month_cost(label, groups, conversations, costs)


@dataclass(frozen=True)
class BudgetState:
    month: str
    spent: Decimal
    limit: Decimal | None
    currency: str

    @property
    def used(self) -> Decimal | None:
        return (self.spent / self.limit).quantize(Decimal("0.0001")) if self.limit else None

    @property
    def level(self) -> str | None:
        """None, "80%" or "100%": the highest warning level reached."""
        used = self.used
        if used is None:
            return None
        reached = [level for level in WARN_LEVELS if used >= level]
        return f"{int(reached[-1] * 100)}%" if reached else None

    @property
    def over(self) -> bool:
        return self.level == "100%"

    def as_dict(self) -> dict[str, object]:
        return {
            "month": self.month,
            "spent": str(self.spent),
            "limit": None if self.limit is None else str(self.limit),
            "used": None if self.used is None else float(self.used),
            "level": self.level,
        }


class CostWatch:
    """This month's spend, read at most once a minute; logs the budget's warnings once a month."""

    def __init__(self, costs: CostSettings, zone: ZoneInfo) -> None:
        self.costs = costs
        self.zone = zone
        self._cached: tuple[float, BudgetState] | None = None
        self._warned: dict[str, str] = {}

    async def state(self, now: datetime) -> BudgetState:
        stamp = now.timestamp()
        if self._cached is not None and stamp - self._cached[0] < CACHE_SECONDS:
            cached = self._cached[1]
            if cached.month == f"{now.astimezone(self.zone):%Y-%m}":
                return cached
        local = now.astimezone(self.zone)
        report = await month_report(self.costs, self.zone, local.year, local.month)
        state = BudgetState(report.month, report.total, self.costs.monthly_budget, self.costs.currency)
        self._cached = (stamp, state)
        self._warn(state)
        return state

    def forget(self) -> None:
        self._cached = None

    def _warn(self, state: BudgetState) -> None:
        level = state.level
        if level is None or self._warned.get(state.month) == level:
            return
        self._warned[state.month] = level
        held = (
            " marketing templates the shop starts are held"
            if state.over and self.costs.hold_marketing_over_budget
            else ""
        )
        log.warning(
            "monthly budget %s: %s of %s %s spent in %s.%s",
            level,
            state.spent,
            state.limit,
            state.currency,
            state.month,
            held,
            extra={"budget_level": level, "spent": str(state.spent), "month": state.month},
        )


async def messaging_limit(default: int | None) -> int | None:
    """The tier Meta last reported (business_capability_update), else the setting."""
    found = await AccountState.get_or_none(key=MESSAGING_LIMIT_KEY)
    if found is None or not isinstance(found.value, dict) or "limit" not in found.value:
        return default
    value = found.value["limit"]
    return value if isinstance(value, int) and value > 0 else None


async def new_messaging_limit(limit: int | None, at: datetime) -> None:
    """Inside the intake's transaction: the tier a webhook reports replaces the one before, and the
    templates the old one held are due again (the claim holds them again if they are still over)."""
    await AccountState.update_or_create(
        key=MESSAGING_LIMIT_KEY, defaults={"value": {"limit": limit, "at": at.isoformat()}}
    )
    await Message.filter(
        message_direction=Direction.OUTBOUND,
        delivery_status=DeliveryStatus.QUEUED,
        error_title__startswith=MESSAGING_LIMIT_HELD,
    ).update(next_attempt_at=at)
    log.info("Meta's messaging limit is now %s", "unlimited" if limit is None else limit)


async def reached_in_24h(now: datetime) -> tuple[int, datetime | None]:
    """Unique customers reached by templates the shop started in the rolling 24 hours, and when the
    first of them leaves it (24 hours after their latest such template)."""
    rows = await fetch(
        "SELECT COUNT(*) AS n, MIN(last) AS first_out FROM (SELECT customer_id, MAX(at) AS last"
        " FROM send_admission WHERE initiated AND at > ? GROUP BY customer_id) AS reached",
        [now - timedelta(hours=24)],
    )
    first_out = as_datetime(rows[0]["first_out"]) if rows else None
    return (int(rows[0]["n"] or 0) if rows else 0), (first_out + timedelta(hours=24) if first_out else None)
