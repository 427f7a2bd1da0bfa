"""Whose turn it is on SQLite's one connection: the webhook's commit goes first.

Tortoise's SQLite client serialises every statement and transaction of the process on one
`asyncio.Lock`. Under load the inbox's batches, the outbox's claims and its result writes queue there
with the intake's group commit, and the webhook's answer waits for the commit: measured at 300 msg/s,
the intake waited 21 ms (p50) and 36-64 ms (p99) for the lock before its own 3-6 ms transaction,
most of the acknowledgement's time. Meta sees that wait; the workers behind the intake do not.

`ConnectionTurns` is that lock with two queues: a task inside `first_in_line()` (the intake's
commit) is served before every task that waits without it, and within each queue in order. Nothing
waits for ever: the intake holds the connection for one commit at a time and queues again only
after it, so the others get at least every other turn. PostgreSQL has a pool of connections, not
one lock, and ignores the mark.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Literal

_first: ContextVar[bool] = ContextVar("first_in_line", default=False)


@contextlib.contextmanager
def first_in_line() -> Iterator[None]:
    """The current task's waits for SQLite's connection go before the others' (the webhook's commit:
    someone outside is waiting for its answer). A task started inside the block inherits the mark,
    as it inherits every context variable: start none there that should wait its ordinary turn."""
    token = _first.set(True)
    try:
        yield
    finally:
        _first.reset(token)


class ConnectionTurns(asyncio.Lock):
    """An asyncio lock (acquire, release, locked, async with) with a queue for `first_in_line()`
    tasks ahead of the ordinary one. A release hands the lock straight to the next waiter, so no
    task can slip in between."""

    def __init__(self) -> None:
        super().__init__()
        self._locked = False
        self._first: deque[asyncio.Future[None]] = deque()
        self._others: deque[asyncio.Future[None]] = deque()

    def locked(self) -> bool:
        return self._locked

    async def acquire(self) -> Literal[True]:
        if not self._locked and not self._first and not self._others:
            self._locked = True
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._first if _first.get() else self._others
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed the lock, then cancelled: pass it on
                self.release()
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)
            raise
        return True

    def release(self) -> None:
        if not self._locked:
            raise RuntimeError("ConnectionTurns.release() of a lock nobody holds")
        for queue in (self._first, self._others):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():  # a cancelled waiter is skipped
                    waiter.set_result(None)  # the lock stays held: it is the waiter's now
                    return
        self._locked = False
