"""Stopping the background loops without cancelling them inside a database transaction.

A task cancelled while Tortoise enters or leaves a transaction can leave the connection's lock held, and
every later query on that connection then waits for ever (on SQLite there is one connection). So the
loops are asked to stop between two pieces of work, and are cancelled only if they overstay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

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
