"""Blue ticks for handled inbound messages, at most one mark-read per customer every `every` seconds.

Marking a message read marks the earlier ones of the conversation too (Meta's mark-as-read), so a
customer's first message in a while is marked at once, and the ones that follow within `every` seconds
are marked together, by the newest of them, when the interval is up: a customer typing five lines in a
row costs two calls, not five. Best effort: nothing is stored, a failed call is not tried again, and the
receipts still waiting when the outbox stops are sent then, within its grace.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Hashable, Iterable
from typing import Any

from bot.loops import Loop

MonotonicClock = Callable[[], float]


class ReadReceipts:
    """Starts `mark_read(wamid)` through `spawn`, throttled per sender (any hashable: the inbox's
    customer id, or the address of a row written without one)."""

    def __init__(
        self,
        mark_read: Callable[[str], Coroutine[Any, Any, None]],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        every: float,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        self._mark_read = mark_read
        self._spawn = spawn
        self._every = every
        self._clock = clock
        self._marked_at: dict[Hashable, float] = {}
        """Sender -> when their last receipt went, oldest first (a sender marked again moves to the end);
        only senders marked within the last `every` seconds."""
        self._waiting: dict[Hashable, str] = {}
        """Sender -> the newest handled message not marked yet (every such sender is in `_marked_at`)."""
        self._loop = Loop("outbox-read-receipts", self._step, every)
        """Sleeps until the oldest sender's interval is up (a new sender's ends later: no wake needed)."""

    @property
    def waiting(self) -> int:
        """Senders whose newest message waits for the end of their interval."""
        return len(self._waiting)

    def start(self) -> None:
        if self._every > 0:
            self._loop.start()

    async def stop(self) -> None:
        """Send every waiting receipt now (the outbox is stopping, after the inbox: none come later)."""
        await self._loop.stop()
        now = self._clock()
        for sender, wamid in list(self._waiting.items()):
            self._send(sender, wamid, now)

    def handled(self, newest: Iterable[tuple[Hashable, str]]) -> None:
        """Each sender's newest handled message, one pair per sender, in the order handled."""
        now = self._clock()
        for sender, wamid in newest:
            marked_at = self._marked_at.get(sender)
            if marked_at is None or now - marked_at >= self._every:
                self._send(sender, wamid, now)
            else:
                self._waiting[sender] = wamid
        self._loop.wake()

    async def _step(self) -> None:
        """Send what is due, forget the senders whose interval has passed, and sleep until the next
        one's is up (`_marked_at` is oldest first, so only its front is ever due)."""
        now = self._clock()
        while self._marked_at:
            sender, marked_at = next(iter(self._marked_at.items()))
            if now - marked_at < self._every:
                self._loop.interval = marked_at + self._every - now
                return
            del self._marked_at[sender]
            wamid = self._waiting.get(sender)
            if wamid is not None:
                self._send(sender, wamid, now)
        self._loop.interval = self._every

    def _send(self, sender: Hashable, wamid: str, now: float) -> None:
        self._waiting.pop(sender, None)
        self._marked_at.pop(sender, None)
        if self._every > 0:
            self._marked_at[sender] = now
        self._spawn(self._mark_read(wamid))
