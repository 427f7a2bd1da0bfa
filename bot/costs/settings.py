"""settings.yaml's `costs:` and `limits:` sections (and `whatsapp.messaging_limit`'s values).

A rate table holds prices per Meta category and per market (the recipient's country calling code, such
as "1" or "34", or the letters of a BSUID such as "US"; "*" for every other market), in the shop's
billing currency, from its `effective_from` day on. A change of Meta's prices is a new table, never a
code change; re-pricing reads the ledger again with the tables as they are now.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

MARKET_PATTERN = r"^(\*|[0-9]{1,4}|[A-Z]{2})$"
TIERS = {"TIER_250": 250, "TIER_2K": 2000, "TIER_10K": 10_000, "TIER_100K": 100_000, "TIER_UNLIMITED": None}
"""Meta's names (`whatsapp_business_manager_messaging_limit`) for the portfolio's messaging limit."""
UNLIMITED = "unlimited"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Price = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=6)]


class RateTable(_Section):
    effective_from: date
    rates: dict[str, dict[str, Price]] = {}
    """category -> market -> price per message; a category or market missing here costs nothing."""
    free_per_month: dict[str, int] = {}
    """category -> messages free each month before the rate applies (e.g. service: 1000 from 2026-10-01)."""

    @field_validator("rates")
    @classmethod
    def _markets(cls, value: dict[str, dict[str, Decimal]]) -> dict[str, dict[str, Decimal]]:
        import re

        for category, markets in value.items():
            for market in markets:
                if not re.match(MARKET_PATTERN, market):
                    raise ValueError(
                        f"{category}: market {market!r} is not a calling code (34), two letters (US) or *"
                    )
        return value


def _default_per_type() -> dict[str, Decimal]:
    return {kind: Decimal("0.005") for kind in ("text", "image", "document", "audio")} | {
        "template": Decimal("0.009")
    }


class CostSettings(_Section):
    model: Literal["rates", "per_type"] = "rates"
    """rates: Meta's per-message pricing from the status webhooks' `pricing` (category, type) and the
    tables below; per_type: a flat price per message type sent (`per_type`)."""
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    tables: list[RateTable] = []
    per_type: dict[str, Price] = Field(default_factory=_default_per_type)
    """costs.model: per_type: the price of each message type sent (others: nothing)."""
    monthly_budget: Price | None = None
    """Warn at 80% and 100% (log, /metrics, panel); at 100% marketing templates the shop starts are held."""
    hold_marketing_over_budget: bool = True
    """false: warn only, send everything."""

    @field_validator("tables")
    @classmethod
    def _distinct_days(cls, value: list[RateTable]) -> list[RateTable]:
        days = [table.effective_from for table in value]
        if len(set(days)) != len(days):
            raise ValueError("two rate tables start on the same day")
        return sorted(value, key=lambda table: table.effective_from)


class LimitSettings(_Section):
    daily_per_customer: int = Field(default=1000, ge=1, le=1_000_000)
    """The most outbound messages one customer gets in one shop day; the rest wait for the next day."""
    hold_hours: float = Field(default=24, gt=0, le=24 * 14)
    """A message held by a send limit this long after it was queued fails (with the reason)."""
    inbound_per_minute: int = Field(default=30, ge=0, le=10_000)
    """Messages one customer may send in a minute before the bot stops answering them for that minute
    (they are kept; the customer is told once); 0: no limit (bot/spine/flood.py)."""


def _tier(value: Any) -> Any:
    """250, 2000 …, "unlimited", Meta's TIER_2K …, or -1 (Meta's unlimited) -> an int, or None."""
    if isinstance(value, str):
        text = value.strip().upper()
        if text in TIERS:
            return TIERS[text]
        if text == UNLIMITED.upper():
            return None
    if value == -1:
        return None
    return value


MessagingLimit = Annotated[Annotated[int, Field(ge=1)] | None, BeforeValidator(_tier)]
"""Unique customers business-initiated conversations may reach in a rolling 24 hours; None: unlimited."""


def parse_tier(value: Any) -> int | None:
    """A tier as settings or a webhook give it; ValueError for anything else."""
    converted = _tier(value)
    if converted is None:
        return None
    if isinstance(converted, bool) or not isinstance(converted, int) or converted < 1:
        raise ValueError(f"not a messaging limit: {value!r}")
    return converted
