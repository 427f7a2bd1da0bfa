"""A month's cost: the ledger's messages counted in the database by (shop day, category, type, market,
template, flow), then priced here from the rate tables as they are now (re-pricing is running this
again), or, with `costs.model: per_type`, the messages sent counted by type at a flat price each.

Free messages are counted apart: Meta's free types (`free_customer_service`, `free_entry_point`) and
the first `free_per_month` messages of a category in the month (the table in force on each day says
how many; they are given to the month's earliest messages). Averages: per priced message, and per
conversation (a customer with at least one message in the ledger that month).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from bot.costs.pricing import FREE_TYPES, rate, table_for
from bot.costs.settings import CostSettings

UNKNOWN = "unknown"
CENT = Decimal("0.0001")


@dataclass(frozen=True)
class Counted:
    """One group of the ledger's messages of a month, as the database counted them."""

    day: date
    category: str
    pricing_type: str | None
    market: str
    template: str | None
    flow: str | None
    messages: int


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Line(_Out):
    messages: int
    amount: Decimal


class CategoryLine(Line):
    category: str


class TemplateLine(Line):
    template: str


class FlowLine(Line):
    flow: str


class Free(_Out):
    messages: int
    by_reason: dict[str, int]
    """free_customer_service, free_entry_point, free_per_month (the allowance) …"""


class MonthCost(_Out):
    month: str
    model: str
    currency: str
    total: Decimal
    messages: int
    """Every message in the ledger (or sent, per_type) this month, the free ones included."""
    charged_messages: int
    by_category: list[CategoryLine]
    by_template: list[TemplateLine]
    by_flow: list[FlowLine]
    per_message: Decimal | None
    """total / charged messages."""
    conversations: int
    per_conversation: Decimal | None
    free: Free
    budget: dict[str, object] | None = None
    messaging_limit: dict[str, object] | None = None


def _round(value: Decimal) -> Decimal:
    return value.quantize(CENT)


def price(
    groups: Iterable[Counted], costs: CostSettings
) -> tuple[Decimal, dict[str, dict[str, Line]], Free, int, int]:
    """Price counted groups: (total, {"category"|"template"|"flow": {key: Line}}, free, messages, charged)."""
    ordered = sorted(
        groups,
        key=lambda g: (g.day, g.category, g.market, g.pricing_type or "", g.template or "", g.flow or ""),
    )
    used: dict[str, int] = defaultdict(int)  # allowance taken per category this month
    lines: dict[str, dict[str, list[Decimal | int]]] = {"category": {}, "template": {}, "flow": {}}
    free: dict[str, int] = defaultdict(int)
    total, messages, charged = Decimal(0), 0, 0
    for group in ordered:
        messages += group.messages
        keys = {
            "category": group.category,
            "template": group.template,
            "flow": group.flow,
        }
        if group.pricing_type in FREE_TYPES:
            free[group.pricing_type or UNKNOWN] += group.messages
            paid, amount = 0, Decimal(0)
        else:
            table = table_for(costs.tables, group.day)
            allowance = table.free_per_month.get(group.category, 0) if table else 0
            covered = min(group.messages, max(0, allowance - used[group.category]))
            used[group.category] += covered
            if covered:
                free["free_per_month"] += covered
            paid = group.messages - covered
            amount = rate(table, group.category, group.market) * paid
        total += amount
        charged += paid
        for kind, key in keys.items():
            if key is None:
                continue
            line = lines[kind].setdefault(key, [0, Decimal(0)])
            line[0] = int(line[0]) + group.messages
            line[1] = Decimal(line[1]) + amount
    built = {
        kind: {key: Line(messages=int(v[0]), amount=_round(Decimal(v[1]))) for key, v in found.items()}
        for kind, found in lines.items()
    }
    return (
        _round(total),
        built,
        Free(messages=sum(free.values()), by_reason=dict(sorted(free.items()))),
        messages,
        charged,
    )


def month_cost(month: str, groups: Iterable[Counted], conversations: int, costs: CostSettings) -> MonthCost:
    """The month's report from its counted groups (rates model, or per_type with category = type)."""
    total, lines, free, messages, charged = price(groups, costs)

    def ordered(kind: str) -> list[tuple[str, Line]]:
        return sorted(lines[kind].items(), key=lambda item: (-item[1].amount, -item[1].messages, item[0]))

    return MonthCost(
        month=month,
        model=costs.model,
        currency=costs.currency,
        total=total,
        messages=messages,
        charged_messages=charged,
        by_category=[CategoryLine(category=k, **v.model_dump()) for k, v in ordered("category")],
        by_template=[TemplateLine(template=k, **v.model_dump()) for k, v in ordered("template")],
        by_flow=[FlowLine(flow=k, **v.model_dump()) for k, v in ordered("flow")],
        per_message=_round(total / charged) if charged else None,
        conversations=conversations,
        per_conversation=_round(total / conversations) if conversations else None,
        free=free,
    )


def per_type_settings(costs: CostSettings) -> CostSettings:
    """`costs.model: per_type` as one rate table: each message type at its price, in every market."""
    from bot.costs.settings import RateTable

    table = RateTable(
        effective_from=date(2000, 1, 1),
        rates={kind: {"*": amount} for kind, amount in costs.per_type.items()},
    )
    return costs.model_copy(update={"tables": [table]})
