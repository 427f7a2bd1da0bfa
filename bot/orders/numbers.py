"""How a customer's message names an order number: "35296", "#35296", "order #35296", "status 35296",
"R-1042", "estado 35296", "订单 35296".

One reading for the whole bot. The main menu's pattern (flows/main.yaml, `on: pattern:`) is this
expression, written out because flows are YAML (tests/test_order_numbers.py keeps the two identical);
`orders.lookup` reads every number it is given through `read_order_number`, so an answer to "what's your
order number?" is read exactly as the menu reads it, and "status 35296" looks up 35296.
"""

from __future__ import annotations

import re

ORDER_WORDS = (
    "status",
    "order",
    "repair",
    "estado",
    "pedido",
    "orden",
    "reparaci[oó]n",
    "订单",
    "维修单",
    "进度",
)
"""Words that may come before the number (the menu's own keywords for the order lookup)."""
ORDER_NUMBER = r"[A-Za-z]{0,3}[- ]?\d{3,10}"
"""Up to three letters of the shop's prefix, an optional - or space, 3 to 10 digits."""
ORDER_REFERENCE = rf"^\W*(?:(?:{'|'.join(ORDER_WORDS)})\W*)?#?\s*(?P<order>{ORDER_NUMBER})\W*$"
"""A whole message that is an order number, alone or after one of ORDER_WORDS; group `order`."""
_REFERENCE = re.compile(ORDER_REFERENCE, re.IGNORECASE)


def read_order_number(text: str) -> str | None:
    """The order number `text` names, as written ("R-1042"), or None when it is not just a number."""
    found = _REFERENCE.search(text.strip())
    return found.group("order") if found else None
