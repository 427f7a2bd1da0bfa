"""Rate tables from settings.yaml: the table in force on a day, the recipient's market, prices of
categories Meta may add tomorrow, and the messaging limit's names."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from bot.costs.pricing import market_of, rate, table_for
from bot.costs.settings import parse_tier
from bot.settings import SettingsError, load_settings
from bot.whatsapp.notifications import parse_notification
from tests.helpers import payload

TABLES = """
costs:
  currency: EUR
  monthly_budget: 50
  tables:
    - effective_from: 2026-10-01        # Meta's reported change: service replies charged past 1,000
      rates:
        marketing: {"34": 0.0509, "*": 0.06}
        utility: {"34": 0.0166, "*": 0.02}
        service: {"34": 0.0166}
      free_per_month: {service: 1000}
    - effective_from: 2025-07-01
      rates:
        marketing: {"34": 0.0509, "*": 0.06}
        utility: {"34": 0.02}
"""


def settings_with(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return load_settings(path, {})


def test_the_table_in_force_on_a_day(tmp_path: Path) -> None:
    costs = settings_with(tmp_path, TABLES).costs
    assert [t.effective_from for t in costs.tables] == [date(2025, 7, 1), date(2026, 10, 1)]  # sorted
    assert table_for(costs.tables, date(2025, 6, 30)) is None
    september, october = (
        table_for(costs.tables, date(2026, 9, 30)),
        table_for(costs.tables, date(2026, 10, 1)),
    )
    assert rate(september, "utility", "34") == Decimal("0.02")
    assert rate(october, "utility", "34") == Decimal("0.0166")  # a price change is a new table
    assert rate(september, "service", "34") == 0 and rate(october, "service", "34") == Decimal("0.0166")
    assert rate(october, "marketing", "44") == Decimal("0.06")  # "*": every other market
    assert rate(october, "general_purpose_ai", "34") == 0  # a category no table names: nothing, no crash
    assert october is not None and october.free_per_month == {"service": 1000}
    assert costs.currency == "EUR" and costs.monthly_budget == Decimal(50)


def test_markets_are_calling_codes_or_bsuid_countries() -> None:
    assert market_of("15550002222") == "1"
    assert market_of("34612345678") == "34"
    assert market_of("79161234567") == "7"
    assert market_of("353871234567") == "353"
    assert market_of("US.13491208655302741918") == "US"
    assert market_of(None) == "*"


def test_bad_tables_are_refused_with_the_key(tmp_path: Path) -> None:
    for text, where in (
        (
            "costs:\n  tables:\n    - {effective_from: 2026-01-01, rates: {marketing: {Spain: 1}}}\n",
            "costs.tables",
        ),
        ("costs:\n  model: per_message\n", "costs.model"),
        ("costs:\n  monthly_budget: -5\n", "costs.monthly_budget"),
        ("limits:\n  daily_per_customer: 0\n", "limits.daily_per_customer"),
        ("whatsapp:\n  messaging_limit: TIER_3\n", "whatsapp.messaging_limit"),
    ):
        with pytest.raises(SettingsError, match=where.replace(".", r"\.")):
            settings_with(tmp_path, text)


def test_the_messaging_limit_in_any_of_its_spellings(tmp_path: Path) -> None:
    assert settings_with(tmp_path, "").whatsapp.messaging_limit == 250  # a new portfolio's
    assert settings_with(tmp_path, "whatsapp:\n  messaging_limit: TIER_2K\n").whatsapp.messaging_limit == 2000
    assert (
        settings_with(tmp_path, "whatsapp:\n  messaging_limit: unlimited\n").whatsapp.messaging_limit is None
    )
    assert parse_tier(-1) is None and parse_tier(10000) == 10000 and parse_tier("TIER_100K") == 100_000
    with pytest.raises(ValueError):
        parse_tier("lots")
    defaults = settings_with(tmp_path, "").limits
    assert (defaults.daily_per_customer, defaults.hold_hours) == (1000, 24)


def test_the_messaging_limit_webhook_is_read() -> None:
    body = payload("business_capability_update.json")
    assert parse_notification(json.dumps(body).encode()).messaging_limits() == [2000]
    change = body["entry"][0]["changes"][0]
    for value, expected in ((-1, [None]), ("2000", []), (True, []), (10**12, [])):
        change["value"]["max_daily_conversations_per_business"] = value
        assert parse_notification(json.dumps(body).encode()).messaging_limits() == expected
