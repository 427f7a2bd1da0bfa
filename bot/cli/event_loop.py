"""The event loop `bot serve` runs on, and the garbage collector's settings for a long-lived server.

uvloop (libuv) runs the same asyncio code with less of the loop's own work per callback, socket read
and timer: in one `make bench` pair at 1,000 msg/s the bot spent 1.26 ms of CPU per message on it and
1.32 on asyncio's loop. It is installed where it builds (Linux and macOS); elsewhere, or with
`server.event_loop: asyncio`, the server runs on asyncio's own loop, which the tests use.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Literal

log = logging.getLogger(__name__)

GC_FIRST_GENERATION = 5_000
"""Container allocations between the collector's youngest-generation passes (CPython's default: 700).
Each message allocates thousands of short-lived objects that reference counting frees; the passes over
the survivors took 6% of the bot's samples at 800 msg/s (py-spy --native). Larger values trade memory
for CPU: with this one `make bench` held about 160 MB instead of 117 and kept up better at 700 and
1,000 msg/s."""


def new_event_loop(choice: Literal["uvloop", "asyncio"]) -> asyncio.AbstractEventLoop:
    """A new loop of the kind chosen, asyncio's when uvloop is not installed (said once at INFO)."""
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.info("uvloop is not installed here: serving on asyncio's own event loop")
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def settle_garbage_collector() -> None:
    """Once the app is built: what start-up made (modules, flows, models) is left out of every later
    collection (`gc.freeze`), and the youngest generation is collected less often."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_FIRST_GENERATION, second, third)
