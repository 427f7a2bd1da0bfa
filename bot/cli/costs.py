"""`bot costs 2026-11`: the month's cost as tables (the same as GET /api/costs?month=2026-11)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from bot.costs.report import Line, MonthCost
from bot.costs.service import month_report, parse_month
from bot.db import close_db, init_db
from bot.master_keys import load_key_ring
from bot.settings import Settings


def _table(title: str, rows: list[tuple[str, Line]], currency: str) -> list[str]:
    if not rows:
        return []
    lines = ["", f"{title:<28} {'messages':>9} {'amount':>12}"]
    lines += [f"{name[:28]:<28} {line.messages:>9} {line.amount:>12} {currency}" for name, line in rows]
    return lines


def render(report: MonthCost) -> str:
    c = report.currency
    per_message = "-" if report.per_message is None else f"{report.per_message} {c}"
    per_conversation = "-" if report.per_conversation is None else f"{report.per_conversation} {c}"
    lines = [
        f"Costs of {report.month} ({report.model}, {c})",
        "",
        f"total                        {report.total} {c}",
        f"messages                     {report.messages}"
        f" ({report.charged_messages} charged, {report.free.messages} free)",
        f"per charged message          {per_message}",
        f"per conversation             {per_conversation} ({report.conversations} customers)",
    ]
    lines += _table("category", [(x.category, x) for x in report.by_category], c)
    lines += _table("template", [(x.template, x) for x in report.by_template], c)
    lines += _table("flow", [(x.flow, x) for x in report.by_flow], c)
    if report.free.by_reason:
        lines += ["", "free: " + ", ".join(f"{name} {n}" for name, n in report.free.by_reason.items())]
    return "\n".join(lines) + "\n"


async def print_costs(settings: Settings, month: str) -> int:
    year, number = parse_month(month)
    await init_db(settings.database_url)
    load_key_ring(settings)
    try:
        report = await month_report(settings.costs, ZoneInfo(settings.shop.timezone), year, number)
    finally:
        await close_db()
    print(render(report), end="")
    return 0
