"""When a failed send is tried again, and when it stops: the error's class says whether, the horizon how long.

Transient errors (5xx, timeouts, throttling, 131000, 133004 …: the classes whose `max_attempts` is None)
are retried with the class's capped, jittered exponential backoff for as long as the message can still
do its job: a free-form message until the customer's 24-hour window closes, a template until
`TEMPLATE_HORIZON` after it was queued. `outbox.retry_horizon_hours` shortens both (or lengthens the
templates'). The last try is placed a little before the horizon rather than skipped. Errors that may not
be transient (code 1 on a 4xx, a 2xx without a message id) keep a small attempt limit, capped again by
`outbox.max_attempts`; permanent errors stop at once. Every stop carries its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.outbox.window import window_closes_at
from bot.whatsapp.errors import GraphError

TEMPLATE_HORIZON = timedelta(hours=24)
LAST_TRY_MARGIN = timedelta(seconds=30)
"""The last try comes this long before the horizon, so a free-form retry is not refused at the edge."""


@dataclass(frozen=True)
class Horizon:
    """Until when a row is worth trying, and what ends it (for the reason a row gives up)."""

    ends_at: datetime
    what: str


@dataclass(frozen=True)
class Retry:
    at: datetime


@dataclass(frozen=True)
class GiveUp:
    reason: str


class RetryPolicy:
    def __init__(self, horizon: timedelta | None, max_attempts: int) -> None:
        self._horizon = horizon
        """None: free-form messages for as long as the window allows, templates TEMPLATE_HORIZON."""
        self._max_attempts = max_attempts

    def horizon(self, queued_at: datetime, free_form: bool, last_inbound_at: datetime | None) -> Horizon:
        closes = window_closes_at(last_inbound_at) if free_form else None
        limit = self._horizon or TEMPLATE_HORIZON
        if free_form and (closes is None or self._horizon is None or closes <= queued_at + limit):
            return Horizon(closes or queued_at, "the customer's 24-hour window closes")
        return Horizon(queued_at + limit, f"the retry horizon ({_hours(limit)} after queueing) ends")

    def after(
        self,
        error: GraphError,
        attempts: int,
        now: datetime,
        horizon: Horizon,
        paused_until: datetime | None = None,
    ) -> Retry | GiveUp:
        """What follows a failed attempt (`attempts` made so far, this one included). `paused_until`: the
        error was account-wide and the whole outbox waits until then, whatever the class says."""
        if paused_until is not None:
            wanted = paused_until
        elif not error.retryable:
            return GiveUp("a permanent error, not retried")
        elif error.max_attempts is not None and attempts >= (
            limit := min(error.max_attempts, self._max_attempts)
        ):
            return GiveUp(f"at most {limit} {'try' if limit == 1 else 'tries'} for this error")
        else:
            wanted = now + timedelta(seconds=error.retry_delay(attempts - 1))
        at = min(wanted, horizon.ends_at - LAST_TRY_MARGIN)
        if at <= now:
            ends = horizon.ends_at.astimezone(UTC)
            return GiveUp(f"{horizon.what} at {ends:%Y-%m-%d %H:%M:%S} UTC, before another try")
        return Retry(at)


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} h"
