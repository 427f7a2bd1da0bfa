"""Prices from the rate tables: which table a day falls under, which market a recipient is in, and
what one message of a category costs there. Unknown categories, types and markets are priced (at
nothing unless a table names them), never refused: Meta adds values without notice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from bot.costs.settings import RateTable

FREE_TYPES = frozenset({"free_customer_service", "free_entry_point"})
"""`pricing.type` values Meta does not charge; `regular` (and anything new) is priced."""
ANY_MARKET = "*"
# Country calling codes of two digits (ITU); 1 and 7 are one digit; every other code has three.
_TWO_DIGIT = frozenset(
    {"20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48"}
    | {"49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66"}
    | {"81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98"}
)


def market_of(address: str | None) -> str:
    """The recipient's market: the calling code of a phone (wa_id digits), or a BSUID's two letters."""
    if not address:
        return ANY_MARKET
    if len(address) > 3 and address[2] == "." and address[:2].isalpha():
        return address[:2].upper()
    digits = "".join(ch for ch in address if ch.isdigit())
    if not digits:
        return ANY_MARKET
    if digits[0] in "17":
        return digits[0]
    return digits[:2] if digits[:2] in _TWO_DIGIT else digits[:3]


def table_for(tables: Sequence[RateTable], day: date) -> RateTable | None:
    """The table in force on `day`: the latest one that started on or before it (tables are sorted)."""
    found = None
    for table in tables:
        if table.effective_from <= day:
            found = table
    return found


def rate(table: RateTable | None, category: str, market: str) -> Decimal:
    """One message of `category` to `market` under `table`: the market's price, else "*", else 0."""
    if table is None:
        return Decimal(0)
    markets = table.rates.get(category) or {}
    price = markets.get(market, markets.get(ANY_MARKET))
    return price if price is not None else Decimal(0)
