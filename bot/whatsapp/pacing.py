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
import hashlib
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bot.whatsapp.errors import TransportError

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

SWEEP_SECONDS = 30.0  # how often per-recipient buckets that have refilled completely are forgotten
PREFETCH_SECONDS = 0.02
"""A shared pacer takes this many seconds' worth of the business number's tokens per round trip (at
least the sends waiting): at 1,000 messages/s, 20 a time; unused ones lapse, never saved up."""
LAPSE_SECONDS = 0.02
"""How late a prefetched token may still be used: later, it could bunch with other processes' sends."""
KEY_LENGTH = 64
"""The longest bucket key the store keeps (bot/db/models.py PACE_KEY_LENGTH); longer ones are hashed."""


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


class BucketStore(Protocol):
    """Token buckets several processes share (bot/db/buckets.py on PostgreSQL)."""

    async def reserve(self, spans: Mapping[str, float]) -> dict[str, float]:
        """Take `spans[key]` seconds of tokens from each bucket; per key, the seconds from now to its
        new theoretical arrival time."""
        ...

    async def hold(self, key: str, seconds: float) -> None:
        """No token from bucket `key` for `seconds` from now."""
        ...

    async def sweep(self, older_than: float) -> None:
        """Forget buckets that have been full for `older_than` seconds."""
        ...


@dataclass
class _Wanted:
    pair: str | None
    """The recipient's bucket key, or None: a business token only."""
    done: asyncio.Future[tuple[float, float]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    """(business token free at, pair token free at), on this process's clock."""


class SharedPacer(Pacer):
    """The same two limits, held across every process that shares `store`: the business number's bucket
    and each recipient's are rows in the database, so N processes together never send faster than one.

    Sends waiting at the same moment share one round trip: their recipients' tokens and the business
    tokens they need (plus up to PREFETCH_SECONDS' worth more, kept for the next sends) are taken in one
    statement. What the process itself has sent is still counted in memory too, so `delay_for` answers
    without a round trip (it cannot see other processes' sends; `acquire` does). A store that cannot be
    reached fails the send as a transport error: not sent, retried later by the outbox.
    """

    def __init__(
        self,
        store: BucketStore,
        key: str,
        messages_per_second: float = 80,
        pair_interval: float = 6.0,
        pair_burst: int = 20,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        *,
        burst: int | None = None,
    ) -> None:
        super().__init__(messages_per_second, pair_interval, pair_burst, clock, sleep, burst=burst)
        self._store = store
        self._key = _bucket_key(f"business:{key}")
        self._step = 1.0 / messages_per_second
        self._business_tolerance = self._business._tolerance
        self._prefetch = max(1, int(messages_per_second * PREFETCH_SECONDS))
        self._tokens: deque[float] = deque()
        """Business tokens taken and not used yet: when each is free, in order."""
        self._wanted: list[_Wanted] = []
        self._flushing: asyncio.Task[None] | None = None
        self._next_store_sweep = clock() + SWEEP_SECONDS
        self._background: set[asyncio.Task[None]] = set()

    async def acquire(self, recipient: str) -> None:
        key = recipient.lstrip("+")
        self._note_local(key)
        business_at, pair_at = await self._want(pair_bucket_key(key))
        if pair_at > business_at + LAPSE_SECONDS:  # the recipient's limit binds: that token would lapse
            await self._sleep_until(pair_at)
            business_at, _ = await self._want(None)
        await self._sleep_until(business_at)

    def hold(self, recipient: str, seconds: float) -> None:
        super().hold(recipient, seconds)
        key = pair_bucket_key(recipient)
        task = asyncio.get_running_loop().create_task(self._store.hold(key, seconds + self._pair_tolerance))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _note_local(self, key: str) -> None:
        """This process's own sends, for `delay_for` (as Pacer.acquire counts them, without waiting)."""
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        tat = max(self._tats.get(key, now), now)
        self._tats[key] = tat + self._pair_interval

    async def _sleep_until(self, at: float) -> None:
        wait = at - self._clock()
        if wait > 0.0:
            await self._sleep(wait)

    async def _want(self, pair: str | None) -> tuple[float, float]:
        wanted = _Wanted(pair)
        self._wanted.append(wanted)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())
        return await wanted.done

    async def _flush(self) -> None:
        """Serve every send waiting, a round trip for each group that gathered meanwhile."""
        while self._wanted:
            group, self._wanted = self._wanted, []
            try:
                await self._serve(group)
            except Exception as exc:
                log.warning("pacing store not reached: %r", exc)
                error = TransportError.from_exception(exc)
                for wanted in group:
                    if not wanted.done.done():
                        wanted.done.set_exception(error)

    async def _serve(self, group: list[_Wanted]) -> None:
        now = self._clock()
        while self._tokens and self._tokens[0] < now - LAPSE_SECONDS:
            self._tokens.popleft()
        short = len(group) - len(self._tokens)
        taken = max(short, self._prefetch) if short > 0 else 0
        pairs = Counter(wanted.pair for wanted in group if wanted.pair is not None)
        spans = {key: count * self._pair_interval for key, count in pairs.items()}
        if taken:
            spans[self._key] = taken * self._step
        if now >= self._next_store_sweep:
            self._next_store_sweep = now + SWEEP_SECONDS
            await self._store.sweep(SWEEP_SECONDS)
        ahead = await self._store.reserve(spans) if spans else {}
        now = self._clock()  # the answer's time: a slot is late by the round trip at most, never early
        if taken:
            first = now + ahead[self._key] - taken * self._step - self._business_tolerance
            self._tokens.extend(first + k * self._step for k in range(taken))
        pair_slots = {}
        for key, count in pairs.items():
            first_pair = now + ahead[key] - count * self._pair_interval - self._pair_tolerance
            pair_slots[key] = deque(first_pair + k * self._pair_interval for k in range(count))
        for wanted in group:
            business_at = self._tokens.popleft()
            pair_at = pair_slots[wanted.pair].popleft() if wanted.pair is not None else now
            wanted.done.set_result((business_at, pair_at))


def pair_bucket_key(recipient: str) -> str:
    """The shared bucket of one recipient's pair limit (erasing a customer removes theirs)."""
    return _bucket_key(f"pair:{recipient.lstrip('+')}")


def _bucket_key(key: str) -> str:
    if len(key) <= KEY_LENGTH:
        return key
    kind, _, rest = key.partition(":")
    return f"{kind}:#{hashlib.sha256(rest.encode()).hexdigest()[: KEY_LENGTH - len(kind) - 2]}"
