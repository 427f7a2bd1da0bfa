"""The send limits at the outbox's claim: read what limits.py decides on, in a few grouped queries, and
write its outcome, inside the claim's transaction.

Every row let through is recorded once in `send_admission` (its customer, the time, whether the shop
started it); the daily cap counts a customer's admissions since the shop's midnight, and Meta's
messaging limit the customers of started ones in the rolling 24 hours. Held rows stay `queued` with the
reason in `error_title` and `next_attempt_at` at the hold's end (the shop's next day, the messaging
limit's first free slot, next month); rows held past `limits.hold_hours` fail with the reason.

All of it is in the database, so the limits hold across restarts and across processes. On PostgreSQL
a claim first takes a transaction advisory lock per customer it claims (in order: no deadlock), and one
for the messaging limit when it has templates the shop starts, so two processes claiming rows of the
same customer count one after the other, never both from the same number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.costs.limits import Candidate, Hold, Situation, decide
from bot.costs.service import CostWatch, messaging_limit, reached_in_24h
from bot.db.claims import Claims
from bot.db.models import DeliveryStatus, Message, SendAdmission
from bot.db.sql import fetch, fetch_rows, marks
from bot.db.writes import Writes
from bot.monitoring import metrics
from bot.periods import local_midnight
from bot.settings import Settings
from bot.spine.outbox.window import window_open

MARKETING = "marketing"
ADMISSION_COLUMNS = ("message_id", "customer_id", "initiated", "at")
"""A claim's admissions, written as rows of values (bot/db/writes.Writes.insert), not a model per row,
with the claim's commit; the count read before them is one parameterised statement: both run at every
claim."""


class SendLimits:
    """`category_of(template name)`: the template's category from templates/ (None: unknown)."""

    def __init__(self, settings: Settings, claims: Claims, category_of: Callable[[str], str | None]) -> None:
        self._settings = settings
        self._claims = claims
        self._zone = ZoneInfo(settings.shop.timezone)
        self._category_of = category_of
        self.costs = CostWatch(settings.costs, self._zone)

    async def hold(
        self,
        rows: Sequence[Message],
        windows: Mapping[int, datetime | None],
        now: datetime,
        writes: Writes,
    ) -> dict[int, Hold]:
        """Decide the holds of the claimed `rows` (in claim order) and add them and the admissions to
        the claim's `writes`; returns them by row id."""
        rows = [row for row in rows if row.customer_id is not None]
        if not rows:
            return {}
        customers = sorted({row.customer_id for row in rows if row.customer_id is not None})
        await self._claims.lock_sends(customers, messaging_limit=False)
        ids = [row.id for row in rows]
        before = {
            found[0]
            for found in await fetch_rows(
                f"SELECT message_id FROM send_admission WHERE message_id IN ({marks(len(ids))})", ids
            )
        }
        candidates = [self._candidate(row, windows.get(row.customer_id or 0), now, before) for row in rows]
        situation = await self._situation(candidates, customers, now)
        holds = decide(candidates, situation)
        _write(holds, now, writes)
        await writes.insert(
            SendAdmission,
            ADMISSION_COLUMNS,
            [(c.row_id, c.customer, c.initiated, now) for c in situation.admitted],
            ignore_conflicts=True,
        )
        for hold in holds.values():
            metrics.held(hold.reason)
        return holds

    def _candidate(
        self, row: Message, last_inbound_at: datetime | None, now: datetime, before: set[int]
    ) -> Candidate:
        template = row.payload.get("name") if row.message_type == "template" and row.payload else None
        initiated = isinstance(template, str) and not window_open(last_inbound_at, now)
        category = self._category_of(template) if isinstance(template, str) else None
        return Candidate(
            row_id=row.id,
            customer=row.customer_id or 0,
            created_at=row.created_at,
            initiated=initiated,
            marketing=category == MARKETING,
            admitted_before=row.id in before,
        )

    async def _situation(
        self, candidates: Sequence[Candidate], customers: list[int], now: datetime
    ) -> Situation:
        local = now.astimezone(self._zone)
        counted = await fetch(
            "SELECT customer_id, COUNT(*) AS n FROM send_admission"
            f" WHERE customer_id IN ({marks(len(customers))}) AND at >= ? GROUP BY customer_id",
            [*customers, local_midnight(local.date(), self._zone)],
        )
        starting = [c for c in candidates if c.initiated and not c.admitted_before]
        limit = await messaging_limit(self._settings.whatsapp.messaging_limit) if starting else None
        reached: set[int] = set()
        count, frees_at = 0, None
        if starting and limit is not None:
            await self._claims.lock_sends([], messaging_limit=True)
            count, frees_at = await reached_in_24h(now)
            found: list[int] = await SendAdmission.filter(  # type: ignore[assignment]
                customer_id__in=sorted({c.customer for c in starting}),
                initiated=True,
                at__gt=now - timedelta(hours=24),
            ).values_list("customer_id", flat=True)
            reached = set(found)
        over = False
        if self._settings.costs.monthly_budget and any(c.marketing for c in starting):
            over = (await self.costs.state(now)).over
        first_of_next = (local.replace(day=1) + timedelta(days=32)).date().replace(day=1)
        return Situation(
            now=now,
            cap=self._settings.limits.daily_per_customer,
            sent_today={int(r["customer_id"]): int(r["n"]) for r in counted},
            next_day=local_midnight(local.date() + timedelta(days=1), self._zone),
            limit=limit,
            reached=reached,
            reached_count=count,
            limit_frees_at=frees_at,
            over_budget=over,
            hold_marketing=self._settings.costs.hold_marketing_over_budget,
            next_month=local_midnight(first_of_next, self._zone),
            hold_for=timedelta(hours=self._settings.limits.hold_hours),
        )


_HOLD_ROWS = 'UPDATE "message" SET "next_attempt_at" = ?, "error_title" = ? WHERE "id" IN ({0})'
_FAIL_ROWS = (
    'UPDATE "message" SET "delivery_status" = ?, "failed_at" = ?, "next_attempt_at" = NULL,'
    ' "error_title" = ? WHERE "id" IN ({0})'
)


def _write(holds: Mapping[int, Hold], now: datetime, writes: Writes) -> None:
    """The holds, one UPDATE per outcome (held rows wait with the reason; rows held too long fail)."""
    by_outcome: dict[tuple[datetime, str, bool], list[int]] = {}
    for row_id, hold in holds.items():
        by_outcome.setdefault((hold.until, hold.title, hold.fail), []).append(row_id)
    for (until, title, fail), ids in by_outcome.items():
        if fail:
            writes.execute(
                _FAIL_ROWS.format(marks(len(ids))), [DeliveryStatus.FAILED.value, now, title, *ids]
            )
        else:
            writes.execute(_HOLD_ROWS.format(marks(len(ids))), [until, title, *ids])
