"""Tortoise's SQLite client with transactions that cost two round trips to SQLite's thread, not three.

Tortoise's SQLite transaction begins with a `commit()` and then `BEGIN`: the commit is there to end a
transaction the connection might still have open, but the connection runs in autocommit mode
(`isolation_level=None`), so there is none: every transaction of the bot paid a wasted trip through
aiosqlite's thread (bench/statements.sh at 400 msg/s: 1,804 commits for 902 BEGINs). Here the commit is
made only when the connection really is inside a transaction, so nothing committed or rolled back
changes; `BEGIN` and the final `COMMIT` stay as they are. The module is a Tortoise engine
(`bot.db.config` names it for sqlite:// URLs): Tortoise reads `client_class` from it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from tortoise.backends.base.client import TransactionContext
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.exceptions import TransactionManagementError

from bot.db.turns import ConnectionTurns


class TransactionWrapper(SqliteTransactionWrapper):
    """A transaction whose `begin()` commits only a transaction that is actually open."""

    async def begin(self) -> None:
        try:
            if self._connection.in_transaction:  # never so in autocommit mode; Tortoise's guard kept
                await self._connection.commit()
            await self._connection.execute("BEGIN")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


class Client(SqliteClient):
    """`SqliteClient` whose transactions are `TransactionWrapper`s (nested ones stay savepoints), and
    whose connection is taken in turns that put the webhook's commit first (bot/db/turns.py)."""

    def __init__(self, file_path: str, **kwargs: Any) -> None:
        super().__init__(file_path, **kwargs)
        self._lock = ConnectionTurns()

    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(TransactionWrapper(self), self._lock)


client_class = Client
