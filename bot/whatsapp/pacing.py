"""Throughput pacing: send no faster than Meta allows, rather than only retrying after 130429 / 131056.

Two limits apply to every message (Meta's throughput and pair-rate-limit pages under
https://developers.facebook.com/docs/whatsapp/throughput): the business number's throughput (80
messages/s by default) and the pair rate limit (about one message per 6 s to the same user, with bursts
allowed). Both are token buckets written as GCRA ("theoretical arrival time"): one float per bucket, no
timer, no lock. A caller *reserves* its slot and then sleeps until it, so one recipient's wait never
holds up anyone else, and concurrent senders queue in slot order without a mutex.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

SWEEP_SECONDS = 30.0  # how often per-recipient buckets that have refilled completely are forgotten


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; GCRA, so the state is one float."""

    __slots__ = ("_clock", "_interval", "_tat", "_tolerance", "burst", "rate")

    def __init__(self, rate: float, burst: int = 1, clock: Clock = time.monotonic) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number, got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate = rate
        self.burst = burst
        self._interval = 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._tat = -math.inf  # when the bucket will be full again; the past means full now
        self._clock = clock

    def delay(self, now: float | None = None) -> float:
        """Seconds until a token is free; no side effect."""
        if now is None:
            now = self._clock()
        wait = self._tat - self._tolerance - now
        return wait if wait > 0.0 else 0.0

    def reserve(self, now: float | None = None) -> float:
        """Take the next token, even if it is only free later; return the seconds until it is."""
        if now is None:
            now = self._clock()
        tat = self._tat if self._tat > now else now
        self._tat = tat + self._interval
        wait = tat - self._tolerance - now
        return wait if wait > 0.0 else 0.0

    def hold(self, seconds: float, now: float | None = None) -> None:
        """No token for `seconds`, and the burst is spent: the far side says we were too fast."""
        if now is None:
            now = self._clock()
        self._tat = max(self._tat, now + seconds + self._tolerance)


class Pacer:
    """Waits for both the business number's bucket and the recipient's own bucket before a send.

    Per-recipient state is a dict of floats (recipient → theoretical arrival time); an entry whose
    time has passed is a full bucket, the same as no entry, so a periodic sweep drops it and memory
    stays proportional to the recipients messaged in the last couple of minutes, not to all customers.
    Recipients are keyed without a leading '+', so "+1555…" and "1555…" share one bucket.
    """

    def __init__(
        self,
        messages_per_second: float = 80,
        pair_interval: float = 6.0,
        pair_burst: int = 20,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        *,
        burst: int | None = None,
    ) -> None:
        if pair_interval < 0 or not math.isfinite(pair_interval):
            raise ValueError(f"pair_interval must be >= 0, got {pair_interval}")
        if pair_burst < 1:
            raise ValueError(f"pair_burst must be at least 1, got {pair_burst}")
        # By default a tenth of a second's worth of sends may leave together.
        business_burst = burst if burst is not None else max(1, round(messages_per_second / 10))
        self._business = TokenBucket(messages_per_second, business_burst, clock)
        self._pair_interval = float(pair_interval)
        self._pair_tolerance = (pair_burst - 1) * self._pair_interval
        self._tats: dict[str, float] = {}
        self._clock = clock
        self._sleep = sleep
        self._next_sweep = clock() + SWEEP_SECONDS

    @property
    def recipients_tracked(self) -> int:
        """How many recipients currently have a not-yet-full bucket (or one not yet swept)."""
        return len(self._tats)

    async def acquire(self, recipient: str) -> None:
        """Return when a message to `recipient` may be sent; reserves the slots, so call once per send.

        A task cancelled while waiting keeps its reserved slots (errs on the slow side).
        """
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        key = recipient.lstrip("+")
        tats = self._tats
        tat = tats.get(key, now)
        if tat < now:
            tat = now
        tats[key] = tat + self._pair_interval
        wait = tat - self._pair_tolerance - now
        if wait > 0.0:
            await self._sleep(wait)
            now = self._clock()
        wait = self._business.reserve(now)
        if wait > 0.0:
            await self._sleep(wait)

    def hold(self, recipient: str, seconds: float) -> None:
        """After a 131056: nothing to this recipient for `seconds`, then one message per pair_interval."""
        now = self._clock()
        key = recipient.lstrip("+")
        self._tats[key] = max(self._tats.get(key, now), now + seconds + self._pair_tolerance)

    def delay_for(self, recipient: str) -> float:
        """Seconds `acquire(recipient)` would wait now, so a caller can skip rather than block."""
        now = self._clock()
        tat = self._tats.get(recipient.lstrip("+"))
        pair = tat - self._pair_tolerance - now if tat is not None else 0.0
        return max(pair, self._business.delay(now), 0.0)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + SWEEP_SECONDS
        self._tats = {key: tat for key, tat in self._tats.items() if tat > now}
