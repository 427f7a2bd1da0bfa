"""Stopping the background loops without cancelling them inside a database transaction.

A task cancelled while Tortoise enters or leaves a transaction can leave the connection's lock held, and
every later query on that connection then waits for ever (on SQLite there is one connection). So the
loops are asked to stop between two pieces of work, and are cancelled only if they overstay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 10.0


async def finish(task: asyncio.Task[None] | None, patience: float = STOP_TIMEOUT_SECONDS) -> None:
    """Wait for a loop that was asked to stop; cancel it only if it has not ended after `patience` seconds."""
    if task is None or task.done():
        return
    done, _ = await asyncio.wait({task}, timeout=patience)
    if not done:
        log.warning("%s did not stop within %.0f s; cancelling it", task.get_name(), patience)
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class Loop:
    """One background task that runs `step()` over and over: again at once when `eager` and the step
    did some work (it returned something true), else after `interval` seconds or as soon as `wake()` is
    called. A failing step is logged and tried again; `stop()` ends it between two steps."""

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[object]],
        interval: float,
        *,
        eager: bool = False,
        wait_first: bool = False,
    ) -> None:
        self.name = name
        self.interval = interval
        self._step = step
        self._eager = eager
        self._wait_first = wait_first
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    def wake(self) -> None:
        self._wakeup.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        await finish(self._task)

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def _run(self) -> None:
        if self._wait_first:
            await self._pause()
        while not self._stopping:
            self._wakeup.clear()
            try:
                worked = await self._step()
            except Exception:
                log.exception("%s failed; trying again", self.name)
                worked = False
            if not (self._eager and worked) and not self._stopping:
                await self._pause()

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), self.interval)
