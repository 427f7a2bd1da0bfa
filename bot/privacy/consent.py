"""The consent ledger: who opted out of (or back into) the messages the shop starts, when, and why.

Every signal is kept as a ConsentChange row (its scope, action, source and time), and the customer's
current state is on the Customer row itself (`opted_out_at` for everything the shop starts, the STOP
words; `marketing_opted_out_at` for marketing, Meta's user_preferences and error 131050), so whoever
already reads the customer reads their consent for free. Call `record` inside the transaction of the
change that caused it. `consent_history` is the ledger as the customer's export shows it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.db.models import ConsentAction, ConsentChange, ConsentScope, ConsentSource, Customer

DETAIL_LENGTH = 128

_STATE_COLUMN = {ConsentScope.ALL: "opted_out_at", ConsentScope.MARKETING: "marketing_opted_out_at"}


async def record(
    customer: Customer,
    scope: ConsentScope,
    action: ConsentAction,
    source: ConsentSource,
    at: datetime,
    detail: str | None = None,
) -> bool:
    """Keep the signal in the ledger and move the customer's state; returns whether the state changed
    (a second STOP is kept too, but changes nothing)."""
    await ConsentChange.create(
        customer_id=customer.id,
        scope=scope,
        action=action,
        source=source,
        at=at,
        detail=detail[:DETAIL_LENGTH] if detail else None,
    )
    column = _STATE_COLUMN[scope]
    was_out = getattr(customer, column) is not None
    if action == ConsentAction.OPT_OUT and not was_out:
        setattr(customer, column, at)
    elif action == ConsentAction.OPT_IN and was_out:
        setattr(customer, column, None)
    else:
        return False
    await Customer.filter(id=customer.id).update(**{column: getattr(customer, column)})
    return True


async def consent_history(customer_id: int) -> list[dict[str, Any]]:
    """Every opt-out and opt-in of the customer, oldest first, as JSON values (the export's section)."""
    rows = await ConsentChange.filter(customer_id=customer_id).order_by("at", "id")
    return [
        {
            "at": row.at.isoformat(),
            "scope": str(row.scope),
            "action": str(row.action),
            "source": str(row.source),
            "detail": row.detail,
        }
        for row in rows
    ]
