"""The send limits' rule on plain values: cap, messaging limit, budget, order and giving up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.costs.limits import BUDGET, CAP, MESSAGING_LIMIT, Candidate, Situation, decide

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def situation(**changes: object) -> Situation:
    values: dict[str, object] = {
        "now": NOW,
        "cap": 3,
        "sent_today": {},
        "next_day": NOW + timedelta(hours=11),
        "limit": 2,
        "reached": set(),
        "reached_count": 0,
        "limit_frees_at": NOW + timedelta(hours=5),
        "over_budget": False,
        "hold_marketing": True,
        "next_month": NOW + timedelta(days=6),
        "hold_for": timedelta(hours=24),
    }
    values.update(changes)
    return Situation(**values)  # type: ignore[arg-type]


def row(
    row_id: int, customer: int, *, initiated: bool = False, marketing: bool = False, age_h: float = 0
) -> Candidate:
    return Candidate(row_id, customer, NOW - timedelta(hours=age_h), initiated, marketing)


def test_the_daily_cap_counts_today_and_this_claim_and_keeps_order() -> None:
    s = situation(sent_today={1: 2})
    holds = decide([row(10, 1), row(11, 1), row(12, 1), row(20, 2)], s)
    assert sorted(holds) == [11, 12]  # 2 sent today + row 10 = 3; the rest wait, in order
    assert {h.reason for h in holds.values()} == {CAP}
    assert holds[11].until == NOW + timedelta(hours=11)
    assert "limits.daily_per_customer" in holds[11].title


def test_the_messaging_limit_counts_unique_customers_the_shop_reaches() -> None:
    s = situation(reached={7}, reached_count=1)
    holds = decide(
        [
            row(1, 7, initiated=True),  # already reached today: no new slot
            row(2, 8, initiated=True),  # the second and last slot
            row(3, 9, initiated=True),  # over: waits for the oldest to leave the 24 hours
            row(4, 9),  # a reply in the window behind it waits too (order)
            row(5, 10),  # a reply in the window: never counts
        ],
        s,
    )
    assert list(holds) == [3, 4]
    assert holds[3].reason == MESSAGING_LIMIT and holds[3].until == NOW + timedelta(hours=5)
    assert [c.row_id for c in s.admitted] == [1, 2, 5]
    assert s.reached == {7, 8}
    assert decide([row(6, 11, initiated=True)], situation(limit=None)) == {}  # unlimited


def test_the_budget_holds_only_marketing_the_shop_starts() -> None:
    s = situation(over_budget=True, limit=None)
    holds = decide(
        [
            row(1, 1, initiated=True, marketing=True),
            row(2, 2, initiated=True),  # a utility notification
            row(3, 3, marketing=True),  # inside the window
        ],
        s,
    )
    assert list(holds) == [1] and holds[1].reason == BUDGET and holds[1].until == NOW + timedelta(days=6)
    assert (
        decide([row(4, 1, initiated=True, marketing=True)], situation(over_budget=True, hold_marketing=False))
        == {}
    )


def test_held_too_long_fails() -> None:
    holds = decide([row(1, 1, age_h=30)], situation(sent_today={1: 3}))
    assert holds[1].fail and "gave up after 24 h held" in holds[1].title


def test_a_row_let_through_before_is_not_counted_again() -> None:
    retried = Candidate(1, 1, NOW, initiated=True, admitted_before=True)
    s = situation(sent_today={1: 3}, limit=1, reached_count=1)
    assert decide([retried], s) == {} and s.admitted == []
