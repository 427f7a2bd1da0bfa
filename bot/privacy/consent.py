"""The consent ledger: who opted out of (or back into) the messages the shop starts, when, and why.

Every signal is kept as a ConsentChange row (its scope, action, source and time), and the customer's
current state is on the Customer row itself (`opted_out_at` for everything the shop starts, the STOP
words; `marketing_opted_out_at` for marketing, Meta's user_preferences and error 131050), so whoever
already reads the customer reads their consent for free. Call `record` inside the transaction of the
change that caused it (`record_once` for Meta's signals, which may come twice or out of order).
`consent_history` is the ledger as the customer's export shows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.db.models import (
    CONSENT_DETAIL_LENGTH,
    ConsentAction,
    ConsentChange,
    ConsentScope,
    ConsentSource,
    Customer,
)

DETAIL_LENGTH = CONSENT_DETAIL_LENGTH

_STATE_COLUMN = {ConsentScope.ALL: "opted_out_at", ConsentScope.MARKETING: "marketing_opted_out_at"}


async def _keep(
    customer: Customer,
    scope: ConsentScope,
    action: ConsentAction,
    source: ConsentSource,
    at: datetime,
    detail: str | None,
) -> None:
    """The ledger's row for one signal (its detail clipped to the column)."""
    await ConsentChange.create(
        customer_id=customer.id,
        scope=scope,
        action=action,
        source=source,
        at=at,
        detail=detail[:DETAIL_LENGTH] if detail else None,
    )


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
    await _keep(customer, scope, action, source, at, detail)
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


async def record_once(
    customer: Customer,
    scope: ConsentScope,
    action: ConsentAction,
    source: ConsentSource,
    at: datetime,
    detail: str | None = None,
) -> bool:
    """`record` for a signal Meta may deliver twice and in any order (a webhook is retried until it is
    acknowledged, and two are never ordered): the same signal at the same time is kept once, and one
    older than the customer's latest of the same scope is kept in the ledger without moving the state."""
    mine = ConsentChange.filter(customer_id=customer.id, scope=scope)
    if await mine.filter(action=action, source=source, at=at).exists():
        return False
    if await mine.filter(at__gt=at).exists():
        await _keep(customer, scope, action, source, at, detail)
        return False
    return await record(customer, scope, action, source, at, detail)


async def marketing_refused(failures: Sequence[tuple[int, datetime, str]]) -> list[int]:
    """Error 131050 (the user stopped marketing messages) on sends to these customers, as (customer
    id, when, what failed): a marketing opt-out for each who is not already out, once however many of
    their sends failed. Returns the customers recorded."""
    first: dict[int, tuple[datetime, str]] = {}
    for customer_id, at, detail in failures:
        first.setdefault(customer_id, (at, detail))
    if not first:
        return []
    recorded = []
    for customer in await Customer.filter(id__in=list(first), marketing_opted_out_at=None).order_by("id"):
        at, detail = first[customer.id]
        await record(
            customer, ConsentScope.MARKETING, ConsentAction.OPT_OUT, ConsentSource.ERROR_131050, at, detail
        )
        recorded.append(customer.id)
    return recorded


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
