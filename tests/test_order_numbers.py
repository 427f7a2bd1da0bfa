"""One reading of an order number (bot/orders/numbers.py), for the main menu and the lookup's question."""

from __future__ import annotations

import pytest

from bot.engine import load_flows
from bot.orders.numbers import ORDER_REFERENCE, read_order_number
from tests.helpers import REPO, shop_actions


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("35296", "35296"),
        ("#35296", "35296"),
        ("order #35296", "35296"),
        ("status 35296", "35296"),
        ("Status: 35296!", "35296"),
        ("R-1042", "R-1042"),
        ("order r1042", "r1042"),
        ("estado 35296", "35296"),
        ("reparación 35296", "35296"),
        ("订单 35296", "35296"),
        ("  35296  ", "35296"),
    ],
)
def test_what_customers_type_is_read_as_the_number(text: str, number: str) -> None:
    assert read_order_number(text) == number


@pytest.mark.parametrize("text", ["status", "I have 2 phones, 12345 and 12346", "call me at 5", "12", ""])
def test_other_messages_name_no_order_number(text: str) -> None:
    assert read_order_number(text) is None


def test_the_main_menu_reads_an_order_number_with_the_same_expression() -> None:
    """flows/main.yaml cannot import Python: its pattern is written out, and must stay this one."""
    flows = load_flows(REPO / "flows", shop_actions(), REPO / "templates")
    menu = flows.flows["main"].states["menu"].on
    assert menu is not None
    assert {regex: target for regex, target in menu.pattern.items() if "?P<order>" in regex} == {
        ORDER_REFERENCE: "orders.lookup"
    }
