"""Which claimed sends wait, and why: the daily cap per customer, Meta's messaging limit, the budget.

`decide` is the rule, on plain values the outbox's claim has read from the database (bot/costs/guard.py
reads them): it never sees a row it was not given and does no I/O.

- **Budget** (`costs.monthly_budget` reached, `hold_marketing_over_budget`): a marketing template the
  shop starts (the customer's window is closed) waits for next month. Service replies and utility
  notifications are never held by the budget.
- **Daily cap** (`limits.daily_per_customer`): the customer's messages let through today (the shop's
  day), counted in the database, and those of this claim; over it, the rest wait for the next day.
- **Messaging limit**: a template the shop starts reaches a customer who counts against Meta's rolling
  24 hours of unique recipients, unless they are already among them; once the set is full, it waits
  until its oldest recipient drops out. Replies inside the window never count.

A customer's later rows wait behind their first held one (their messages go out in order). A row held
longer than `limits.hold_hours` since it was queued fails instead, with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

CAP, MESSAGING_LIMIT, BUDGET = "cap", "messaging_limit", "budget"
MESSAGING_LIMIT_HELD = "held: Meta's messaging limit"
"""How the title of a row held by the messaging limit starts (a new tier releases them)."""


@dataclass(frozen=True)
class Candidate:
    row_id: int
    customer: int
    created_at: datetime
    initiated: bool
    """A template sent while the customer's 24-hour window is closed: the shop starts the chat."""
    marketing: bool = False
    """Its template's category is marketing."""
    admitted_before: bool = False
    """Let through at an earlier claim (a retry, a row put back): counted then, never held again."""


@dataclass(frozen=True)
class Hold:
    reason: str
    until: datetime
    title: str
    fail: bool = False
    """Held past `limits.hold_hours`: the row fails with the title instead of waiting again."""


@dataclass
class Situation:
    """What the database says now; `decide` updates `sent_today` and `reached` as it admits rows."""

    now: datetime
    cap: int
    sent_today: dict[int, int]
    next_day: datetime
    """The shop's next midnight, in UTC."""
    limit: int | None
    """Meta's messaging limit; None: unlimited."""
    reached: set[int]
    """Customers already among the rolling 24 hours' unique recipients of templates the shop started."""
    reached_count: int
    limit_frees_at: datetime | None
    """When the oldest of them leaves the 24 hours."""
    over_budget: bool
    hold_marketing: bool
    next_month: datetime
    hold_for: timedelta
    admitted: list[Candidate] = field(default_factory=list)
    """The rows this decision let through (to be recorded: the next claim counts them)."""


def decide(candidates: Sequence[Candidate], situation: Situation) -> dict[int, Hold]:
    """Row id -> its hold, for the rows that must wait (or fail); the others may be sent now."""
    holds: dict[int, Hold] = {}
    blocked: dict[int, Hold] = {}
    now = situation.now
    for row in candidates:
        if row.admitted_before and row.customer not in blocked:
            continue
        hold = blocked.get(row.customer) or _hold(row, situation)
        if hold is None:
            continue
        if now - row.created_at >= situation.hold_for:
            hours = situation.hold_for.total_seconds() / 3600
            hold = Hold(hold.reason, now, f"{hold.title}; gave up after {hours:g} h held", fail=True)
        holds[row.row_id] = hold
        blocked.setdefault(row.customer, hold)
    return holds


def _hold(row: Candidate, s: Situation) -> Hold | None:
    if row.initiated and row.marketing and s.over_budget and s.hold_marketing:
        return Hold(
            BUDGET, s.next_month, "held: the monthly budget is spent (marketing waits for next month)"
        )
    sent = s.sent_today.get(row.customer, 0)
    if sent >= s.cap:
        return Hold(
            CAP, s.next_day, f"held: {s.cap} messages to this customer today (limits.daily_per_customer)"
        )
    if row.initiated and row.customer not in s.reached:
        if s.limit is not None and s.reached_count >= s.limit:
            until = s.limit_frees_at or s.now + timedelta(hours=1)
            return Hold(
                MESSAGING_LIMIT,
                max(until, s.now + timedelta(minutes=1)),
                f"{MESSAGING_LIMIT_HELD} of {s.limit} customers in 24 hours is reached",
            )
        s.reached.add(row.customer)
        s.reached_count += 1
    s.admitted.append(row)
    s.sent_today[row.customer] = sent + 1
    return None
