"""What "now" is: one type and one default for every part that can be given a controllable clock
(tests, the simulator, `bot chat`'s /wait)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
