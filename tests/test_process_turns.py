"""Several processes on one SQLite file: transactions begin IMMEDIATE, and the HTTP processes go first.

A second connection on the same file stands for another process (`bot orders import` beside `bot
serve`, or the other half of `bot serve --workers N`): SQLite's locks are the file's, whichever
process holds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path

from bot.db import close_db, init_db, share_file
from bot.db.models import Customer
from bot.db.process_turns import PIPE_BYTES, YIELD_SECONDS, ProcessTurn, ProcessTurns
from bot.db.transactions import atomic
from tests.helpers import create_schema, install_test_keys


def _other_process(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    return connection


async def test_a_transaction_that_reads_then_writes_is_not_broken_by_another_process_commit(
    tmp_path: Path,
) -> None:
    """A deferred transaction would read, see the other process commit, and then fail to write with
    "database is locked"; an immediate one holds the write lock, and the other process waits for it."""
    path = tmp_path / "bot.db"
    await create_schema(f"sqlite://{path}")
    install_test_keys(f"sqlite://{path}")
    await init_db(f"sqlite://{path}")
    other = _other_process(path)
    try:
        other_done = threading.Event()

        def other_writes() -> None:
            other.execute("INSERT INTO customer (wa_id, created_at, updated_at) VALUES ('200', 0, 0)")
            other_done.set()

        async with atomic():
            assert await Customer.all().count() == 0
            thread = threading.Thread(target=other_writes)
            thread.start()
            await asyncio.sleep(0.2)  # the other process tries to commit between our read and write
            assert not other_done.is_set(), "the other process wrote inside our transaction"
            await Customer.create(wa_id="100")
        await asyncio.to_thread(thread.join, 10)
        assert other_done.is_set()
        assert sorted(c.wa_id for c in await Customer.all()) == ["100", "200"]
    finally:
        other.close()
        await close_db()


def _hold_write_lock(connection: sqlite3.Connection, seconds: float) -> threading.Thread:
    connection.execute("BEGIN IMMEDIATE")

    def release() -> None:
        time.sleep(seconds)
        connection.execute("COMMIT")

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_begin_starts_as_soon_as_the_other_process_commits(tmp_path: Path) -> None:
    """Not after SQLite's busy handler's next sleep (1, 2, 5, 10... ms): within a few ms of the commit,
    and with the connection's busy_timeout as it was."""
    path = tmp_path / "shared.db"
    holder, mine = _other_process(path), _other_process(path)
    mine.execute("PRAGMA busy_timeout=5000")
    turn = ProcessTurns(2).turn(1, first=True)
    released = _hold_write_lock(holder, 0.3)
    started = time.monotonic()
    turn.begin(mine)
    waited = time.monotonic() - started
    released.join()
    assert mine.in_transaction
    assert 0.29 <= waited < 0.35
    mine.execute("COMMIT")
    assert mine.execute("PRAGMA busy_timeout").fetchone()[0] == 5000


def _commit_later(turn: ProcessTurn, connection: sqlite3.Connection, seconds: float) -> threading.Thread:
    """The other process's transaction ends after `seconds`, as bot/db/sqlite.Connection ends one."""

    def commit() -> None:
        time.sleep(seconds)
        connection.execute("COMMIT")
        turn.after(connection)

    thread = threading.Thread(target=commit)
    thread.start()
    return thread


def _timed_begin(turn: ProcessTurn, connection: sqlite3.Connection) -> float:
    """How long `begin` waited; the transaction it began is committed."""
    started = time.monotonic()
    turn.begin(connection)
    waited = time.monotonic() - started
    connection.execute("COMMIT")
    return waited


def _tries_of_begin(connection: sqlite3.Connection) -> list[str]:
    tries: list[str] = []
    connection.set_trace_callback(lambda sql: tries.append(sql) if sql == "BEGIN IMMEDIATE" else None)
    return tries


def _tries_behind_an_outside_writer(path: Path, turn: ProcessTurn, seconds: float) -> int:
    """The tries of BEGIN `turn.begin` makes while a writer outside the turns holds the lock `seconds`."""
    holder, mine = _other_process(path), _other_process(path)
    tries = _tries_of_begin(mine)
    released = _hold_write_lock(holder, seconds)
    turn.begin(mine)
    released.join()
    mine.execute("COMMIT")
    return len(tries)


def test_a_process_waiting_for_the_write_lock_sleeps_rather_than_polls(tmp_path: Path) -> None:
    """Held by a writer outside the turns (`bot orders import`), which wakes nobody: the waiter looks
    again every `recheck_seconds`, not thousands of times a second (each look takes the interpreter from
    the process's event loop)."""
    turn = ProcessTurns(2, recheck_seconds=0.05).turn(1, first=True)
    assert 2 <= _tries_behind_an_outside_writer(tmp_path / "shared.db", turn, 0.3) <= 0.3 / 0.05 + 2


def test_wakes_left_for_a_process_that_died_waiting_wake_its_successor_once(tmp_path: Path) -> None:
    """A process killed while it waited leaves its waiting byte set, and every transaction that ends
    writes to its pipe until the pipe is full; the process started in its place drains it at its first
    wake instead of waking once per byte."""
    turns = ProcessTurns(2, recheck_seconds=0.05)
    with contextlib.suppress(BlockingIOError):
        os.write(turns._pipes[1][1], b"\0" * PIPE_BYTES)  # the wakes the dead process never read
    turn = turns.turn(1, first=True)  # started again
    assert _tries_behind_an_outside_writer(tmp_path / "shared.db", turn, 0.3) <= 0.3 / 0.05 + 3
    turns.close()


def test_a_process_whose_transaction_ends_wakes_the_one_waiting_for_it(tmp_path: Path) -> None:
    """Both in the turns: the waiter starts when the holder's transaction ends, long before it would
    have looked again by itself."""
    path = tmp_path / "shared.db"
    holder_connection, waiter_connection = _other_process(path), _other_process(path)
    turns = ProcessTurns(2, recheck_seconds=2.0)
    holder, waiter = turns.turn(0, first=True), turns.turn(1, first=True)
    holder.begin(holder_connection)
    tries = _tries_of_begin(waiter_connection)
    committed = _commit_later(holder, holder_connection, 0.1)
    waited = _timed_begin(waiter, waiter_connection)
    committed.join()
    assert 0.09 <= waited < 1.0
    assert len(tries) == 2  # the try that found the lock held, and the one after the wake
    turns.close()


def test_the_worker_process_waits_while_an_http_process_has_a_transaction(tmp_path: Path) -> None:
    """The HTTP process's byte is set from its `begin` until its transaction ends; the worker's
    `begin` starts only after that (here the HTTP process's transaction takes 30 ms), woken by the
    HTTP process's `after`, not by looking again."""
    path = tmp_path / "shared.db"
    http_connection, worker_connection = _other_process(path), _other_process(path)
    turns = ProcessTurns(2, recheck_seconds=1.0)  # only the HTTP process's wake ends the wait in time
    worker, http = turns.turn(0, first=False), turns.turn(1, first=True)
    http.begin(http_connection)
    http.after(http_connection)  # a trip inside the transaction: the byte stays set
    committed = _commit_later(http, http_connection, 0.03)
    waited = _timed_begin(worker, worker_connection)
    committed.join()
    assert 0.025 <= waited < YIELD_SECONDS


def test_a_byte_left_set_delays_the_worker_only_so_long_and_a_restart_clears_it(tmp_path: Path) -> None:
    """An HTTP process killed inside its transaction leaves its byte set (SQLite's own lock goes with
    the dead process): the worker waits YIELD_SECONDS at most, and the process started again in its
    place clears the byte."""
    path = tmp_path / "shared.db"
    worker_connection, dead_connection = _other_process(path), _other_process(path)
    turns = ProcessTurns(2)
    worker, dead = turns.turn(0, first=False), turns.turn(1, first=True)
    dead.begin(dead_connection)
    dead_connection.close()  # gone without its `after`: the byte stays set, the lock is released
    started = time.monotonic()
    worker.begin(worker_connection)
    assert time.monotonic() - started >= YIELD_SECONDS
    worker_connection.execute("COMMIT")
    turns.turn(1, first=True)  # started again
    started = time.monotonic()
    worker.begin(worker_connection)
    assert time.monotonic() - started < YIELD_SECONDS / 2
    worker_connection.execute("COMMIT")


async def test_share_file_gives_the_turn_to_the_database_connection(tmp_path: Path) -> None:
    """`share_file` after `init_db`: the server's transactions then set and clear its byte."""
    url = f"sqlite://{tmp_path / 'bot.db'}"
    await create_schema(url)
    install_test_keys(url)
    await init_db(url)
    turns = ProcessTurns(2)
    turn = turns.turn(1, first=True)
    share_file(turn)
    try:
        async with atomic():
            await Customer.create(wa_id="100")
            assert turns._shared[1] == 1
        assert turns._shared[1] == 0
        assert await Customer.filter(wa_id="100").exists()
    finally:
        await close_db()
