"""The cost ledger: each status webhook's `pricing`, recorded once per message with the customer, the
flow and the template that sent it. Written in the transaction that applies the status (the intake's,
or the outbox's for a status that arrived before its send was recorded), so the ledger and the message
log never disagree; a second `pricing` for the same message (Meta sends one with `sent` and one with
`delivered` or `read`) is ignored by the unique message id.

`type` and `category` are kept as Meta wrote them (clipped at parse): new values are priced at nothing
until a rate table names them, never refused. `billable` is deprecated and not kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bot.costs.pricing import market_of
from bot.db.models import CostEntry, Message

UNKNOWN = "unknown"


def template_of(row: Message) -> str | None:
    payload: dict[str, Any] = row.payload or {}
    name = payload.get("name") if row.message_type == "template" else None
    return name[:512] if isinstance(name, str) else None


async def record_costs(priced: Iterable[tuple[Message, dict[str, Any], datetime]]) -> int:
    """Ledger rows for (outbound row, its pricing, the status's time); inside the caller's transaction.
    Returns how many were offered (a message already in the ledger is skipped by the database)."""
    entries = [(row, pricing, at) for row, pricing, at in priced if row.id is not None and pricing]
    if not entries:
        return 0
    await CostEntry.bulk_create(
        [
            CostEntry(
                message_id=row.id,
                customer_id=row.customer_id,
                market=market_of(row.address),
                message_type=row.message_type,
                category=str(pricing.get("category") or UNKNOWN),
                pricing_type=pricing.get("type"),
                pricing_model=pricing.get("pricing_model"),
                template=template_of(row),
                flow=row.flow,
                at=at,
            )
            for row, pricing, at in entries
        ],
        ignore_conflicts=True,
    )
    return len(entries)
