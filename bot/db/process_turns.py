"""Whose turn it is on one SQLite file that several processes write (`bot serve --workers N`).

SQLite lets one connection write at a time. A transaction that must wait for another process's
goes to SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25... ms between its tries: measured
with one HTTP process and one worker process at 700 msg/s, the webhook's commit then waited behind
the worker's transactions for up to 370 ms (ack p99), and e2e p99 was 725 ms. Two changes fix it:

- `ProcessTurn.begin` tries `BEGIN IMMEDIATE` itself (busy_timeout 0 for that statement only) and,
  while another process writes, waits to be woken when that process's transaction ends, so it starts
  as soon as the other's ends;
- the HTTP processes' transactions (the webhook's commit) go first: while one waits or runs, its byte
  in a shared memory map is set, and the worker process starts no transaction of its own until the
  bytes are clear, or for `YIELD_SECONDS` at most. That is a hint, not a lock: SQLite's own lock keeps
  the writes apart, and a process that dies with its byte set (or a byte left set for any other reason)
  delays the worker by no more than that.

The waits are not polls. A process that waits sets its "waiting" byte and sleeps on its own pipe; a
process whose transaction ends writes a byte to the pipes of those waiting. The waiter sets its byte
before it looks, and the other looks after its transaction has ended, so a wake is never missed
between the two; a writer outside these turns (`bot orders import`, a trip with no transaction) wakes
nobody, so the waiter also looks again every `RECHECK_SECONDS`. Until 2026-12-07 both waits slept
0.1 ms between looks: at 1,000 msg/s with `--workers 2` that looping held the HTTP process's
interpreter for 23% of its profile samples and the worker's for 6%.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import sqlite3
import time

from bot.db.config import BUSY_TIMEOUT_MS

RECHECK_SECONDS = 0.002
"""How long a waiting process sleeps at most before it looks again without being woken."""
PIPE_BYTES = 65536
"""A pipe's buffer on Linux: wakes beyond it are dropped (the waiter has one already)."""
YIELD_SECONDS = 0.05
"""How long the worker process waits at most for the HTTP processes' transactions before its own."""


class ProcessTurns:
    """The shared bytes (a turn byte and a waiting byte per process) and a pipe per process, made
    before the processes are forked (they inherit them)."""

    def __init__(self, processes: int, *, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self._processes = processes
        self._recheck_seconds = recheck_seconds
        self._shared = mmap.mmap(-1, 2 * processes)  # anonymous and MAP_SHARED: children see writes
        self._pipes = [os.pipe() for _ in range(processes)]
        for pipe in self._pipes:
            for end in pipe:
                os.set_blocking(end, False)

    def turn(self, index: int, *, first: bool) -> ProcessTurn:
        """Process `index`'s turn; `first`: its transactions go before the others' (an HTTP process)."""
        self._shared[index] = 0  # a process started again: whatever its predecessor left set is gone
        self._shared[self._processes + index] = 0
        return ProcessTurn(self, index, first=first)

    def close(self) -> None:
        for pipe in self._pipes:
            for end in pipe:
                os.close(end)
        self._pipes = []
        self._shared.close()


class ProcessTurn:
    """Called on SQLite's thread (bot/db/sqlite.Connection): `begin` for each transaction, `after` for
    every trip while it is `open` (only those can end it)."""

    def __init__(self, turns: ProcessTurns, index: int, *, first: bool) -> None:
        self._shared, self._index = turns._shared, index
        self._processes = turns._processes
        self._waiting = turns._processes + index
        self._recheck_seconds = turns._recheck_seconds
        self._wakes = select.poll()
        self._wake_read = turns._pipes[index][0]
        self._wakes.register(self._wake_read, select.POLLIN)
        self._others = [
            (turns._processes + other, pipe[1]) for other, pipe in enumerate(turns._pipes) if other != index
        ]
        """(waiting byte, pipe's write end) of every other process."""
        self._open = False
        """This process began a transaction that has not ended yet."""
        self.first = first
        """Its transactions go first, and its byte says when one waits or runs (an HTTP process)."""

    def begin(self, connection: sqlite3.Connection) -> None:
        """`BEGIN IMMEDIATE` as soon as the write lock is free (after the HTTP processes' turns, unless
        this is one of them); sqlite3.OperationalError after BUSY_TIMEOUT_MS, as SQLite would."""
        self._shared[self._waiting] = 1  # before any look or try: an end after it wakes us
        try:
            if self.first:
                self._shared[self._index] = 1
            else:
                self._yield()
            self._begin_immediate(connection)
        finally:
            self._shared[self._waiting] = 0

    @property
    def open(self) -> bool:
        """This process's transaction has begun and not ended: only its trips can end it (`after`)."""
        return self._open

    def _begin_immediate(self, connection: sqlite3.Connection) -> None:
        connection.execute("PRAGMA busy_timeout=0")
        try:
            deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
            while True:
                try:
                    connection.execute("BEGIN IMMEDIATE")
                    self._open = True
                    return
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                        raise
                self._sleep(deadline)
        finally:
            connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def after(self, connection: sqlite3.Connection) -> None:
        """After each trip: a transaction that has ended (or closed) clears the byte of a `first`
        process, and wakes the processes waiting for it."""
        try:
            ended = not connection.in_transaction
        except sqlite3.ProgrammingError:  # the trip closed the connection
            ended = True
        if not ended or not (self._open or (self.first and self._shared[self._index])):
            return
        self._open = False
        if self.first:
            self._shared[self._index] = 0
        for waiting, wake in self._others:
            if self._shared[waiting]:
                with contextlib.suppress(BlockingIOError):  # full: it has a wake waiting already
                    os.write(wake, b"\0")

    def _yield(self) -> None:
        deadline = time.monotonic() + YIELD_SECONDS
        while self._shared.find(b"\x01", 0, self._processes) != -1 and time.monotonic() < deadline:
            self._sleep(deadline)

    def _sleep(self, deadline: float) -> None:
        """Until another process wakes this one, `RECHECK_SECONDS` pass, or `deadline`."""
        seconds = min(self._recheck_seconds, max(0.0, deadline - time.monotonic()))
        if self._wakes.poll(seconds * 1000):
            with contextlib.suppress(BlockingIOError):  # all of them: a pipe filled for a process that
                os.read(self._wake_read, PIPE_BYTES)  # died waiting is drained by the one after it
