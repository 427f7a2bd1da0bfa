"""Pricing a month from the ledger's counted groups: categories, markets, the table in force each day,
Meta's free types and the free monthly allowance, per template and per flow, and per_type."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from bot.costs.report import Counted, month_cost, per_type_settings
from bot.settings import load_settings

SETTINGS = """
costs:
  currency: EUR
  tables:
    - effective_from: 2026-09-01
      rates:
        marketing: {"34": 0.05, "*": 0.06}
        utility: {"34": 0.02}
    - effective_from: 2026-09-15
      rates:
        marketing: {"34": 0.05, "*": 0.06}
        utility: {"34": 0.01}
        service: {"34": 0.01}
      free_per_month: {service: 3}
"""


def costs(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "settings.yaml"
    path.write_text(SETTINGS)
    return load_settings(path, {}).costs


def test_a_month_priced_from_its_groups(tmp_path: Path) -> None:
    groups = [
        Counted(date(2026, 9, 2), "utility", "regular", "34", "order_status_update", None, 10),  # 10 × 0.02
        Counted(date(2026, 9, 20), "utility", "regular", "34", "order_status_update", None, 10),  # 10 × 0.01
        Counted(date(2026, 9, 20), "marketing", "regular", "44", "offer", "main", 2),  # 2 × 0.06 (*)
        Counted(date(2026, 9, 21), "service", "regular", "34", None, "main", 5),  # 3 free, 2 × 0.01
        Counted(date(2026, 9, 21), "service", "free_customer_service", "34", None, "main", 7),  # free
        Counted(date(2026, 9, 22), "general_purpose_ai", "regular", "34", None, None, 4),  # unknown: 0
    ]
    report = month_cost("2026-09", groups, conversations=6, costs=costs(tmp_path))
    assert report.total == Decimal("0.4400")  # 0.20 + 0.10 + 0.12 + 0.02
    assert report.currency == "EUR"
    assert (report.messages, report.charged_messages) == (38, 28)
    assert [(c.category, c.messages, c.amount) for c in report.by_category] == [
        ("utility", 20, Decimal("0.3000")),
        ("marketing", 2, Decimal("0.1200")),
        ("service", 12, Decimal("0.0200")),
        ("general_purpose_ai", 4, Decimal("0.0000")),
    ]
    assert [(t.template, t.amount) for t in report.by_template] == [
        ("order_status_update", Decimal("0.3000")),
        ("offer", Decimal("0.1200")),
    ]
    assert [(f.flow, f.messages, f.amount) for f in report.by_flow] == [("main", 14, Decimal("0.1400"))]
    assert report.free.model_dump() == {
        "messages": 10,
        "by_reason": {"free_customer_service": 7, "free_per_month": 3},
    }
    assert report.per_message == Decimal("0.0157")  # 0.44 / 28
    assert report.per_conversation == Decimal("0.0733")


def test_a_new_table_reprices_the_same_ledger(tmp_path: Path) -> None:
    groups = [Counted(date(2026, 9, 2), "utility", "regular", "34", "order_status_update", None, 10)]
    before = month_cost("2026-09", groups, 1, costs(tmp_path))
    cheaper = costs(tmp_path)
    first = cheaper.tables[0].model_copy(update={"rates": {"utility": {"34": Decimal("0.005")}}})
    after = month_cost(
        "2026-09", groups, 1, cheaper.model_copy(update={"tables": [first, cheaper.tables[1]]})
    )
    assert (before.total, after.total) == (Decimal("0.2000"), Decimal("0.0500"))


def test_per_type_prices_each_message_type(tmp_path: Path) -> None:
    flat = per_type_settings(costs(tmp_path))
    groups = [
        Counted(date(2026, 9, 2), "text", "regular", "*", None, None, 100),
        Counted(date(2026, 9, 2), "template", "regular", "*", None, None, 10),
        Counted(date(2026, 9, 2), "sticker", "regular", "*", None, None, 3),  # no price: nothing
    ]
    report = month_cost("2026-09", groups, 1, flat)
    assert report.total == Decimal("0.5900")  # 100 × 0.005 + 10 × 0.009
    assert [(c.category, c.messages, c.amount) for c in report.by_category] == [
        ("text", 100, Decimal("0.5000")),
        ("template", 10, Decimal("0.0900")),
        ("sticker", 3, Decimal("0.0000")),
    ]
