"""Pacing with a fake clock: business rate, per-recipient bursts, holds, and bounded memory."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Mapping

import pytest

from bot.whatsapp.errors import TransportError
from bot.whatsapp.pacing import SWEEP_SECONDS, Pacer, SharedPacer, TokenBucket
from tests.helpers import settle


class FakeTime:
    """A clock plus a sleep that only returns when the test advances the clock (or, with auto, at once)."""

    def __init__(self, auto: bool = False) -> None:
        self.now = 0.0
        self.auto = auto
        self.sleeps: list[float] = []
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.auto:
            self.now += seconds
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (self.now + seconds, next(self._order), future))
        await future

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        while self._waiters and self._waiters[0][0] <= self.now + 1e-9:
            heapq.heappop(self._waiters)[2].set_result(None)
        for _ in range(5):  # let woken tasks run
            await asyncio.sleep(0)


def test_token_bucket_burst_then_rate() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=10, burst=3, clock=t.clock)
    assert [bucket.reserve() for _ in range(3)] == [0, 0, 0]
    assert bucket.delay() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)
    t.now = 10.0  # long idle: full again, but never more than the burst
    assert [bucket.reserve() for _ in range(3)] == [0, 0, 0]
    assert bucket.reserve() == pytest.approx(0.1)


def test_token_bucket_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0)


async def test_business_bucket_spaces_sends_at_rate() -> None:
    t = FakeTime(auto=True)
    pacer = Pacer(messages_per_second=50, pair_interval=0, clock=t.clock, sleep=t.sleep, burst=5)
    times = []
    for i in range(105):
        await pacer.acquire(f"+1555000{i:04d}")
        times.append(t.now)
    assert times[:5] == [0.0] * 5
    gaps = [b - a for a, b in itertools.pairwise(times[5:])]
    assert all(g == pytest.approx(0.02) for g in gaps)
    assert times[-1] == pytest.approx(100 / 50)


async def test_concurrent_senders_share_the_rate() -> None:
    t = FakeTime()
    pacer = Pacer(messages_per_second=10, pair_interval=0, clock=t.clock, sleep=t.sleep, burst=1)
    tasks = [asyncio.create_task(pacer.acquire(f"+1555{i}")) for i in range(10)]
    await settle()
    assert sum(task.done() for task in tasks) == 1
    await t.advance(0.45)
    assert sum(task.done() for task in tasks) == 5
    await t.advance(0.5)
    assert all(task.done() for task in tasks)


async def test_recipient_beyond_burst_waits_while_others_go() -> None:
    t = FakeTime()
    pacer = Pacer(messages_per_second=1000, pair_interval=6.0, pair_burst=20, clock=t.clock, sleep=t.sleep)
    for _ in range(20):
        await pacer.acquire("+15550002222")  # the burst goes at once
    assert t.sleeps == []
    assert pacer.delay_for("+15550002222") == pytest.approx(6.0)
    assert pacer.delay_for("15550002222") == pytest.approx(6.0)  # same recipient without '+'
    waiting = asyncio.create_task(pacer.acquire("+15550002222"))
    await settle()
    assert not waiting.done()
    await asyncio.wait_for(pacer.acquire("+15550003333"), timeout=1)  # someone else: immediately
    assert pacer.delay_for("+15550003333") == 0.0
    await t.advance(5.9)
    assert not waiting.done()
    await t.advance(0.1)
    assert waiting.done()
    assert t.sleeps == [pytest.approx(6.0)]


async def test_hold_delays_only_that_recipient() -> None:
    t = FakeTime()
    pacer = Pacer(messages_per_second=1000, pair_interval=6.0, pair_burst=20, clock=t.clock, sleep=t.sleep)
    await pacer.acquire("+15550002222")
    pacer.hold("+15550002222", 4.0)  # a 131056 came back
    assert pacer.delay_for("+15550002222") == pytest.approx(4.0)
    assert pacer.delay_for("+15550003333") == 0.0
    held = asyncio.create_task(pacer.acquire("+15550002222"))
    await asyncio.wait_for(pacer.acquire("+15550003333"), timeout=1)
    await settle()
    assert not held.done()
    await t.advance(4.0)
    assert held.done()
    # after a hold the burst is spent: the next message waits a full pair interval
    assert pacer.delay_for("+15550002222") == pytest.approx(6.0)


async def test_hold_works_with_pair_pacing_off() -> None:
    t = FakeTime(auto=True)
    pacer = Pacer(pair_interval=0, clock=t.clock, sleep=t.sleep)
    pacer.hold("+15550002222", 3.0)
    await pacer.acquire("+15550002222")
    assert t.now == pytest.approx(3.0)
    await pacer.acquire("+15550002222")
    assert t.now == pytest.approx(3.0)


async def test_delay_for_has_no_side_effect() -> None:
    t = FakeTime()
    pacer = Pacer(messages_per_second=1, pair_interval=6, pair_burst=1, clock=t.clock, sleep=t.sleep)
    for _ in range(5):
        assert pacer.delay_for("+1") == 0.0
    assert pacer.recipients_tracked == 0
    await pacer.acquire("+1")
    assert pacer.delay_for("+1") == pytest.approx(6.0)
    assert pacer.delay_for("+2") == pytest.approx(1.0)  # the business bucket (1/s, burst 1)


async def test_full_buckets_are_forgotten() -> None:
    t = FakeTime(auto=True)
    pacer = Pacer(messages_per_second=1e6, pair_interval=6, pair_burst=20, clock=t.clock, sleep=t.sleep)
    for i in range(1000):
        await pacer.acquire(f"+1555{i:07d}")
    assert pacer.recipients_tracked == 1000
    t.now += SWEEP_SECONDS + 6
    await pacer.acquire("+15559999999")
    assert pacer.recipients_tracked == 1


async def test_busy_recipient_survives_sweep() -> None:
    t = FakeTime(auto=True)
    pacer = Pacer(messages_per_second=1e6, pair_interval=6, pair_burst=1, clock=t.clock, sleep=t.sleep)
    await pacer.acquire("+1")
    pacer.hold("+1", SWEEP_SECONDS * 3)
    t.now += SWEEP_SECONDS + 1
    await pacer.acquire("+2")
    assert pacer.delay_for("+1") > SWEEP_SECONDS


def test_pacer_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Pacer(messages_per_second=0)
    with pytest.raises(ValueError):
        Pacer(pair_interval=-1)
    with pytest.raises(ValueError):
        Pacer(pair_burst=0)


class MemoryBuckets:
    """The shared store's arithmetic (bot/db/buckets.py) on the test's clock: one timeline per key."""

    def __init__(self, clock: FakeTime) -> None:
        self.clock = clock
        self.tats: dict[str, float] = {}
        self.round_trips = 0

    async def reserve(self, spans: Mapping[str, float]) -> dict[str, float]:
        self.round_trips += 1
        now = self.clock.now
        ahead = {}
        for key, span in spans.items():
            self.tats[key] = max(self.tats.get(key, now), now) + span
            ahead[key] = self.tats[key] - now
        return ahead

    async def hold(self, key: str, seconds: float) -> None:
        self.tats[key] = max(self.tats.get(key, 0.0), self.clock.now + seconds)

    async def sweep(self, older_than: float) -> None:
        self.tats = {k: tat for k, tat in self.tats.items() if tat >= self.clock.now - older_than}


async def test_shared_pacers_share_one_business_bucket() -> None:
    """Two processes' pacers on one store: their sends together keep the number's rate, slot by slot."""
    t = FakeTime()
    store = MemoryBuckets(t)
    waits: list[float] = []

    async def record(seconds: float) -> None:  # the time stands still: each wait is the send's slot
        waits.append(seconds)

    pacers = [
        SharedPacer(store, "100", messages_per_second=10, burst=1, clock=t.clock, sleep=record) for _ in "ab"
    ]
    for n in range(10):
        await pacers[n % 2].acquire(f"1555{n}")  # ten recipients: only the business bucket binds
    assert sorted(waits) == pytest.approx([k / 10 for k in range(1, 10)])  # the first at once, unslept
    assert len(waits) == 9


async def test_shared_pacers_share_each_recipients_bucket() -> None:
    t = FakeTime()
    store = MemoryBuckets(t)
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    first, second = (
        SharedPacer(
            store, "100", messages_per_second=1000, pair_interval=6, pair_burst=1, clock=t.clock, sleep=record
        )
        for _ in "ab"
    )
    await first.acquire("+15550001111")
    assert slept == []
    await second.acquire("15550001111")  # another process, the same recipient: one pair interval later
    assert slept and slept[0] == pytest.approx(6.0)


async def test_waiting_sends_share_a_round_trip() -> None:
    t = FakeTime(auto=True)
    store = MemoryBuckets(t)
    pacer = SharedPacer(store, "100", messages_per_second=1000, clock=t.clock, sleep=t.sleep)
    await asyncio.gather(*(pacer.acquire(f"1555{n}") for n in range(50)))
    assert store.round_trips <= 2  # fifty sends waiting at once: one statement (and a prefetch)


async def test_a_store_that_cannot_be_reached_fails_the_send_as_a_transport_error() -> None:
    class Down(MemoryBuckets):
        async def reserve(self, spans: Mapping[str, float]) -> dict[str, float]:
            raise ConnectionError("database down")

    t = FakeTime(auto=True)
    pacer = SharedPacer(Down(t), "100", clock=t.clock, sleep=t.sleep)
    with pytest.raises(TransportError):
        await pacer.acquire("15550001111")
