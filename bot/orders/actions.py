"""The order actions flows call: `orders.mine` (the sender's open orders), `orders.lookup` (one
order by its number) and `orders.share_phone` (WhatsApp's "share my number" button).

Privacy is the rule here: only the sender's own orders are ever found (bot/orders/owner.py: theirs by
customer, or by the phone they have now). Another customer's order number gets exactly the answer a
number that does not exist gets, and "did you mean" only ever offers the sender's own orders. A sender
without a phone on file (a business-scoped user ID only) finds nothing a shop wrote for a phone until
they share their number: `orders.lookup` says so in `{no_phone}`, and the flow offers the button; the
number WhatsApp sends back is linked to them where it is stored (bot/identity), and the lookup runs again.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.db.models import Order
from bot.engine import ActionContext, ActionRegistry, ActionResult
from bot.engine.actions import ListArgs
from bot.engine.texts import pick_text
from bot.orders.notify import StatusNotifier
from bot.orders.numbers import read_order_number
from bot.orders.owner import orders_of
from bot.orders.texts import OrderTexts, order_texts
from bot.whatsapp.outbound import BUTTON_BODY_MAX, ContactRequest, clip

CLOSED_STATUSES = frozenset({"picked_up", "cancelled"})
"""Orders in these statuses are history: `orders.mine` does not offer them (a lookup still finds them)."""
SUGGESTION_CUTOFF = 0.75
Localized = str | dict[str, str]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MineArgs(ListArgs):
    none: str
    one: str
    several: str
    list_text: Localized = "Which order?"
    list_button: Localized = "Orders"


class LookupArgs(_Args):
    number: str
    found: str
    not_found: str
    did_you_mean: str


class SharePhoneArgs(_Args):
    text: Localized
    """What the message with the button says (the button's own label is WhatsApp's)."""
    sent: str


def canonical(number: str) -> str:
    """'#r-10452 ' -> 'R10452': what customers type and what the shop wrote compare equal."""
    return re.sub(r"[^0-9A-Za-z]", "", number).upper()


@dataclass(frozen=True)
class OrderActions:
    notifier: StatusNotifier

    def register(self, registry: ActionRegistry) -> None:
        registry.add("orders.mine", self.mine, args_model=MineArgs, targets=("none", "one", "several"))
        registry.add(
            "orders.lookup",
            self.lookup,
            args_model=LookupArgs,
            targets=("found", "not_found", "did_you_mean"),
        )
        registry.add("orders.share_phone", self.share_phone, args_model=SharePhoneArgs, targets=("sent",))

    async def mine(self, context: ActionContext) -> ActionResult:
        """The sender's open orders: none, one (shown), or several (offered as a list to pick from)."""
        args = MineArgs.model_validate(dict(context.args))
        orders = (
            await orders_of(context.customer.id, context.customer.wa_id)
            .exclude(status__in=list(CLOSED_STATUSES))
            .order_by("-updated_at", "-id")
        )
        if not orders:
            return ActionResult(next="none")
        if len(orders) == 1:
            return ActionResult(variables=self.described(orders[0], context), next="one")
        language = context.customer.language
        texts = order_texts(context.texts)
        rows = [
            (
                order.order_number,
                order.order_number,
                f"{order.device_model} · {_label(texts, order, language)}",
            )
            for order in orders
        ]
        choose = args.message(language, rows)
        return ActionResult(outbound=[choose], next="several")

    async def lookup(self, context: ActionContext) -> ActionResult:
        """One of the sender's orders by number; else the closest of their own numbers, or not found.

        `number` may be a whole answer ("status 35296", "order #35296"): it is read the way the main menu
        reads one (bot/orders/numbers.py), and `{looked_up}` says which number was looked for."""
        args = LookupArgs.model_validate(dict(context.args))
        asked = read_order_number(args.number) or args.number.strip()
        looked_up: dict[str, Any] = {"looked_up": asked, "no_phone": None if context.customer.wa_id else True}
        wanted = canonical(asked)
        own = await orders_of(context.customer.id, context.customer.wa_id).order_by("-updated_at", "-id")
        by_number = {canonical(order.order_number): order for order in own}
        found = by_number.get(wanted) or next(
            (
                order
                for key, order in by_number.items()
                if wanted and key.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ") == wanted
            ),
            None,
        )
        if found is not None:
            described = self.described(found, context)
            return ActionResult(variables={**looked_up, **described}, next="found")
        close = (
            difflib.get_close_matches(wanted, list(by_number), n=1, cutoff=SUGGESTION_CUTOFF)
            if wanted
            else []
        )
        if close:
            suggestion = {"suggestion": by_number[close[0]].order_number}
            return ActionResult(variables={**looked_up, **suggestion}, next="did_you_mean")
        return ActionResult(variables=looked_up, next="not_found")

    async def share_phone(self, context: ActionContext) -> ActionResult:
        """WhatsApp's "share my number" button (request_contact_info), for a customer without a phone."""
        args = SharePhoneArgs.model_validate(dict(context.args))
        body = clip(pick_text(args.text, context.customer.language) or "…", BUTTON_BODY_MAX)
        return ActionResult(outbound=[ContactRequest(body=body)], next="sent")

    def described(self, order: Order, context: ActionContext) -> dict[str, Any]:
        """The variables a flow shows an order with, in the texts of the engine run that asks."""
        language = context.customer.language
        texts = order_texts(context.texts)
        update = texts.text(order.status, language, self.notifier.values(order, language)) if texts else None
        return {
            "order_number": order.order_number,
            "order_device": order.device_model,
            "order_status": _label(texts, order, language),
            "order_update": update or "",
        }


def _label(texts: OrderTexts | None, order: Order, language: str) -> str:
    return texts.label(order.status, language) if texts else order.status.replace("_", " ")
