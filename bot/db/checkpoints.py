"""Checkpoints of the SQLite file's write-ahead log, off the commits of `bot serve --workers N`.

SQLite copies the log back into the database file (a checkpoint) by itself once the log has grown by
1,000 pages, inside the commit that crossed the line: that commit's caller waits for the copy, and so
does every process waiting for the write lock, which `bot serve --workers N` hands over when the
commit's trip returns (bot/db/process_turns.py). At 1,000 msg/s the thread below spends 90-120 ms
of every second copying (2026-12-07): time that was spent in the webhook's commits and the inbox's
alike. Its processes turn that off on their connections (`wal_autocheckpoint=0`), and a thread of
each HTTP process runs a PASSIVE checkpoint every `CHECKPOINT_SECONDS` on a connection of its own: it
waits for no reader or writer and none waits for it, so the copying runs beside the commits on
SQLite's side of the GIL (with several HTTP processes, one copies while the others find it busy and
skip). Not in worker 0, which moves the messages: it runs out of time first (bot/processes.py). 60 s
at 1,000 msg/s with `--workers 2`, one run each (2026-12-08): e2e p99 19.1 s with the thread there,
10.1 s with it in the HTTP process. In one process it measured no better (2026-12-08, 500 msg/s,
on and off alternately: e2e p99 454 and 1,120 ms with it, 876 and 1,060 without), so one `bot serve`
and the CLI's commands keep SQLite's own checkpoints.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading

from tortoise import connections

from bot.db import sqlite
from bot.db.config import CONNECTION

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 0.05
"""How often the log is copied back: often enough that each copy is short (a few milliseconds)."""


class Checkpointer:
    """A thread that checkpoints the SQLite file at `path` until stopped."""

    def __init__(self, path: str, *, interval: float = CHECKPOINT_SECONDS) -> None:
        self._path = path
        self._interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0
        """Checkpoints run so far (each copies what the log holds that the file does not yet)."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoints", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """After the checkpoint in hand, if any."""
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        try:
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            log.warning("no checkpoints of %s: it cannot be opened", self._path, exc_info=True)
            return
        try:
            connection.execute("PRAGMA busy_timeout=0")  # a checkpoint already running: skip this one
            while not self._stopping.wait(self._interval):
                self._checkpoint(connection)
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # busy with another checkpoint (a CLI's), or the file is gone
            log.debug("checkpoint of %s skipped: %s", self._path, exc)
            return
        if row is not None and row[1] >= 0:  # -1: the file is not in WAL mode
            self.checkpoints += 1


def sqlite_file() -> str | None:
    """The SQLite file Tortoise's connection is on (None: PostgreSQL, or an in-memory database)."""
    client = connections.get(CONNECTION)
    if not isinstance(client, sqlite.Client) or client.filename == ":memory:":
        return None
    return str(client.filename)


async def turn_off_auto_checkpoints() -> None:
    """On this process's own connection: its commits never checkpoint (a Checkpointer does)."""
    await connections.get(CONNECTION).execute_script("PRAGMA wal_autocheckpoint=0")
