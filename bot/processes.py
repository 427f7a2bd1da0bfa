"""What each process does when `bot serve --workers N` runs on one SQLite file.

On PostgreSQL every worker does everything: the database keeps them apart (bot/db/claims.py). A SQLite
file has no row locks or advisory locks, so there the work is split by kind instead. Process 0 is the
worker process: the inbox, the outbox, the reminders, the handoff guards, media fetching and retention,
and no HTTP. Processes 1 to N-1 are the HTTP processes: the webhook and its intake, the API and the
panel, and none of those loops. Each kind of row still has one process that claims it, as with one
`bot serve`, so the in-process claims stay right, and the two halves of the CPU work run on two cores.

The HTTP processes wake the worker process through a pipe the supervisor opened before forking: after
the intake's commit (the inbox) and after the API or the desk queues a message (the outbox). A wake
is a hint: the worker polls as one `bot serve` does, so a wake lost with a full pipe or a dead process
costs at most a poll's wait, never a message.

The panel's live events are published where they happen, mostly in the worker process, while the
technicians' WebSockets are on the HTTP processes: bot/peer_events.py carries them across.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from bot.db.process_turns import ProcessTurn

INBOX = b"i"
OUTBOX = b"o"
READ_BYTES = 4096


class Duty(StrEnum):
    ALL = "all"
    """One `bot serve`, or a worker on PostgreSQL."""
    HTTP = "http"
    """The webhook, the intake, the API and the panel."""
    WORKERS = "workers"
    """The inbox, the outbox, the timers: everything that moves messages after the intake."""

    @property
    def serves_http(self) -> bool:
        """The webhook, its intake, the API and the panel."""
        return self is not Duty.WORKERS

    @property
    def moves_messages(self) -> bool:
        """The inbox, the outbox, the reminders and guards, media fetching and retention."""
        return self is not Duty.HTTP


class Wakes:
    """Wake-ups from the HTTP processes to the worker process, over one pipe opened before the fork."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def inbox(self) -> None:
        """The intake committed: the inbox has rows to take."""
        self._send(INBOX)

    def outbox(self) -> None:
        """Something was queued (a desk reply, an order notice): the outbox has rows to send."""
        self._send(OUTBOX)

    def _send(self, kind: bytes) -> None:
        with contextlib.suppress(BlockingIOError):  # full: the worker has plenty of wakes waiting
            os.write(self._write, kind)

    def listen(self, inbox: Callable[[], None], outbox: Callable[[], None]) -> Callable[[], None]:
        """In the worker process: call `inbox` and `outbox` on their wakes. Returns the way to stop."""
        loop = asyncio.get_running_loop()

        def readable() -> None:
            try:
                kinds = os.read(self._read, READ_BYTES)
            except BlockingIOError:
                return
            if INBOX in kinds:
                inbox()
            if OUTBOX in kinds:
                outbox()

        def stop() -> None:
            loop.remove_reader(self._read)

        loop.add_reader(self._read, readable)
        return stop


@dataclass(frozen=True)
class ProcessRole:
    """One process's part: its duty, the wakes it sends or hears, and its turns on the file."""

    duty: Duty
    wakes: Wakes
    turn: ProcessTurn


def duty_of(role: ProcessRole | None) -> Duty:
    """A process without a role does everything."""
    return role.duty if role is not None else Duty.ALL
