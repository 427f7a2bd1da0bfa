"""Transactions that know when they have committed: `atomic()` and `on_commit()`.

Tortoise's `in_transaction()` nests (inner blocks are savepoints) but says nothing when the outermost
block commits. Work that must only follow a commit, such as telling the panel that a chat was claimed
or waking the outbox for a queued row, is registered with `on_commit()` inside an `atomic()` block. It
runs once the outermost `atomic()` block has committed. If the block it was registered in rolls back,
it is dropped; a savepoint's rollback drops only what was registered inside that savepoint. Outside any
`atomic()` block it runs at once. This is Django's `transaction.on_commit`. The pending work belongs to
the task that runs the transaction (a ContextVar), as Tortoise's own current transaction does.

A block whose exception is caught inside an enclosing transaction must itself be `atomic()`, not a bare
`in_transaction()`: otherwise the work it registered would outlive its rollback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar

from tortoise import connections
from tortoise.transactions import in_transaction

from bot.db.sqlite import TransactionWrapper

log = logging.getLogger(__name__)

_pending: ContextVar[list[Callable[[], None]] | None] = ContextVar("on_commit", default=None)
_undo: ContextVar[list[Callable[[], None]] | None] = ContextVar("on_rollback", default=None)


@asynccontextmanager
async def atomic() -> AsyncIterator[None]:
    """`in_transaction()` (a savepoint when nested) whose `on_commit()` work runs after the commit."""
    parent, parent_undo = _pending.get(), _undo.get()
    mine: list[Callable[[], None]] = []
    undo: list[Callable[[], None]] = []
    token, undo_token = _pending.set(mine), _undo.set(undo)
    try:
        async with in_transaction():
            yield
    except BaseException:
        for callback in undo:
            _run(callback)
        raise
    finally:
        _pending.reset(token)
        _undo.reset(undo_token)
    if parent is not None:  # a savepoint released: its work waits for the enclosing commit
        parent.extend(mine)
        if parent_undo is not None:
            parent_undo.extend(undo)
        return
    for callback in mine:
        try:
            callback()
        except Exception:  # committed already: a failing callback must not look like a failed write
            log.exception("after-commit callback %r failed", callback)


def _run(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:
        log.exception("after-rollback callback %r failed", callback)


def on_rollback(callback: Callable[[], None]) -> None:
    """Run `callback` if the enclosing `atomic()` block (or one enclosing it) rolls back; never when
    there is none (bot/db/keystore.py forgets the keys a rolled-back block made)."""
    undo = _undo.get()
    if undo is not None:
        undo.append(callback)


def commits_with_next_statement() -> None:
    """Inside `atomic()`, outermost: the next statement is the transaction's last, and on SQLite its
    COMMIT goes to SQLite's thread with it, one trip fewer (bot/db/sqlite.py). Nothing may fail after
    it: the transaction has committed already (a statement after it raises). Nothing on PostgreSQL,
    which commits as usual when the block ends."""
    client = connections.get("default")
    if isinstance(client, TransactionWrapper):
        client.commit_with_next()


def on_commit(callback: Callable[[], None]) -> None:
    """Run `callback` after the enclosing `atomic()` block commits, or now when there is none."""
    pending = _pending.get()
    if pending is None:
        callback()
    else:
        pending.append(callback)
