"""Tortoise's SQLite client with transactions that cost two round trips to SQLite's thread, not three.

Tortoise's SQLite transaction begins with a `commit()` and then `BEGIN`: the commit is there to end a
transaction the connection might still have open, but the connection runs in autocommit mode
(`isolation_level=None`), so there is none: every transaction of the bot paid a wasted trip through
aiosqlite's thread (bench/statements.sh at 400 msg/s: 1,804 commits for 902 BEGINs). Here the commit is
made only when the connection really is inside a transaction, so nothing committed or rolled back
changes; `BEGIN` and the final `COMMIT` stay as they are. The module is a Tortoise engine
(`bot.db.config` names it for sqlite:// URLs): Tortoise reads `client_class` from it.

A transaction's `BEGIN` also goes to the thread with its first statement, in the same trip
(`Connection`). Under load a trip costs far more than SQLite's work: its answer waits for a turn of
the busy event loop, and the one connection stays held meanwhile (a probe at 300 msg/s: the
connection held 98% of the time, the intake's commit 18-24 ms for 4 trips of well under 1 ms of
SQLite's work each). One trip fewer per transaction is that much more of the connection for the rest.

Every transaction begins `BEGIN IMMEDIATE`: it takes the write lock at its start, so one that reads and
then writes never meets another process's commit in between (a deferred one fails there with "database
is locked"; `bot orders import` beside `bot serve` is such a second process, and `bot serve --workers
N` runs several). With `--workers`, each process's turns on the file are its `ProcessTurn`
(bot/db/process_turns.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import aiosqlite
from tortoise.backends.base.client import TransactionContext
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.exceptions import IntegrityError, OperationalError, TransactionManagementError

from bot.db.process_turns import ProcessTurn
from bot.db.turns import ConnectionTurns


class Connection(aiosqlite.Connection):
    """aiosqlite's connection, whose next trip to SQLite's thread can be told to run `BEGIN` before its
    statement, and `COMMIT` after it.

    Every call of aiosqlite's goes through `_execute` (one function queued for the thread), so that is
    where they join the statement. When `BEGIN` fails, the statement does not run; when the statement
    fails, `COMMIT` does not; either way the caller gets the error, and its transaction rolls back."""

    _begin_next = False
    _commit_next = False
    _committed = False
    turn: ProcessTurn | None = None
    """This process's turns on a file other processes write too (`bot serve --workers N`)."""

    def begin_with_next(self) -> None:
        self._begin_next, self._commit_next, self._committed = True, False, False

    def commit_with_next(self) -> None:
        self._commit_next = True

    def finish(self) -> bool:
        """The transaction ends: whether it still needs its COMMIT or ROLLBACK. It does not when it
        never began (no statement was made) or when its last statement committed it."""
        pending = not (self._begin_next or self._committed)
        self._begin_next = self._commit_next = self._committed = False
        return pending

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._committed:  # refused, not run outside the transaction; the next one starts afresh
            self._committed = False
            raise TransactionManagementError("a statement after the one that committed its transaction")
        begin, commit, turn = self._begin_next, self._commit_next, self.turn
        if not (begin or commit or (turn is not None and turn.open)):  # a trip that can end nothing
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        self._begin_next = self._commit_next = False
        statement = partial(fn, *args, **kwargs)
        connection = self._conn

        def in_one_trip() -> Any:
            try:
                if begin:
                    if turn is None:
                        connection.execute("BEGIN IMMEDIATE")
                    else:
                        turn.begin(connection)
                result = statement()
                if commit:
                    connection.commit()
                return result
            finally:
                if turn is not None:  # a transaction that ended wakes the processes waiting for it
                    turn.after(connection)

        result = await super()._execute(in_one_trip)  # type: ignore[no-untyped-call]
        self._committed = commit
        return result

    async def run_together(self, statements: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> None:
        """Each statement run for each of its parameter lists (executemany), in order, in one trip
        (bot/db/writes.Writes); the first that fails stops the rest, and its error is Tortoise's, as
        the client's own calls raise it."""
        connection = self._conn

        def run_all() -> None:
            for sql, values in statements:
                connection.executemany(sql, values)

        try:
            await self._execute(run_all)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(exc) from exc
        except sqlite3.OperationalError as exc:
            raise OperationalError(exc) from exc


class TransactionWrapper(SqliteTransactionWrapper):
    """A transaction whose `begin()` commits only a transaction that is actually open, whose `BEGIN`
    goes with its first statement (`Connection`; one that made none costs no trip at all), and whose
    COMMIT may go with its last."""

    _connection: Connection

    async def begin(self) -> None:
        try:
            if self._connection.in_transaction:  # never so in autocommit mode; Tortoise's guard kept
                await self._connection.commit()
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc
        self._connection.begin_with_next()

    def commit_with_next(self) -> None:
        """The transaction's next statement is its last: COMMIT goes with it (bot/db/transactions.py
        `commits_with_next_statement`)."""
        self._connection.commit_with_next()

    async def commit(self) -> None:
        if self._finalized or self._connection.finish():
            await super().commit()
        self._finalized = True

    async def rollback(self) -> None:
        if self._finalized or self._connection.finish():
            await super().rollback()
        self._finalized = True


class Client(SqliteClient):
    """`SqliteClient` whose transactions are `TransactionWrapper`s (nested ones stay savepoints), and
    whose connection is taken in turns that put the webhook's commit first (bot/db/turns.py)."""

    def __init__(self, file_path: str, **kwargs: Any) -> None:
        super().__init__(file_path, **kwargs)
        self._lock = ConnectionTurns()
        self._turn: ProcessTurn | None = None

    def share_file(self, turn: ProcessTurn) -> None:
        """Other processes write this file too: this one's transactions take `turn`."""
        self._turn = turn
        if isinstance(self._connection, Connection):
            self._connection.turn = turn

    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(TransactionWrapper(self), self._lock)

    async def create_connection(self, with_db: bool) -> None:
        """Tortoise's own, on a `Connection`: the same sqlite3 connection (autocommit, rows as
        sqlite3.Row), pragmas and set-up."""
        if self._connection:
            return
        connection = Connection(partial(sqlite3.connect, self.filename, isolation_level=None), 64)
        connection.turn = self._turn
        self._connection = await connection
        self._connection._conn.row_factory = sqlite3.Row
        for pragma, value in self.pragmas.items():
            cursor = await self._connection.execute(f"PRAGMA {pragma}={value}")
            await cursor.close()
        await self._post_connect()


client_class = Client
