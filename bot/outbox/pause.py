"""The whole outbox waits after an account-wide error, instead of failing every queued row.

An expired token, a missing permission, a payment or policy problem, the number's own throughput or the
service being down (the error classes with `account_wide`) get the same answer for every message, so
trying the others only spends their attempts. The outbox stops claiming for a backoff (the error class's
own delays, growing while the cause lasts), then sends one customer's messages as a probe; the first
answer about a message itself (a success, or a permanent error of that message) resumes full speed.
Rows stay queued meanwhile. One ERROR line when the pause starts, one WARNING when it ends, INFO for
each probe that finds the cause still there.

Throttling of the business number (130429, 4, 80007, 131057) pauses too: the limit is the number's,
so every other customer's send in the same seconds would be refused alike. The pair rate limit (131056)
does not: it is per recipient, so only that customer's messages wait (the pacer holds them).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.whatsapp.errors import GraphError

log = logging.getLogger(__name__)


class AccountPause:
    def __init__(self) -> None:
        self._until: datetime | None = None
        self._failures = 0
        """Account-wide answers since the last success; the backoff's exponent."""
        self._since: datetime | None = None

    def holds(self, now: datetime) -> datetime | None:
        """While paused: until when. None: sending is allowed."""
        return self._until if self._until is not None and now < self._until else None

    @property
    def probing(self) -> bool:
        """A pause has run out but nothing has succeeded since: one customer at a time."""
        return self._failures > 0

    def pause(self, error: GraphError, now: datetime) -> datetime:
        """An account-wide error: until when nothing is sent (a pause already running is joined)."""
        if (until := self.holds(now)) is not None:
            return until
        self._until = now + timedelta(seconds=error.retry_delay(self._failures))
        if self._failures == 0:
            self._since = now
            log.error(
                "outbox paused: %s is about the account, not one message; nothing is sent until %s, "
                "then one probe (rows stay queued)",
                error,
                f"{self._until:%H:%M:%S} UTC",
            )
        else:
            log.info("outbox still paused (%s); next probe at %s", error, f"{self._until:%H:%M:%S}")
        self._failures += 1
        return self._until

    def cleared(self, now: datetime) -> None:
        """Meta accepted a message, or judged one on its own merits: the account is fine again."""
        if self._failures:
            log.warning(
                "outbox resumed after %d account-wide failures over %s",
                self._failures,
                now - (self._since or now),
            )
        self._until, self._failures, self._since = None, 0, None
