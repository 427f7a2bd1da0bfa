"""The customers' data keys in the database (`data_key`), and into the process's key ring.

- `ensure_keys(customer_ids)` before a batch writes: one query loads the keys the ring does not hold,
  and the missing ones are made (wrapped under the first master key) in the caller's transaction. A key
  made inside an `atomic()` block that rolls back is forgotten again (bot/db/transactions.on_rollback),
  so no value is ever sealed under a key whose row is not there.
- `destroy_data_key(customer_id)`: crypto-shredding; everything of theirs, wherever a copy of it is
  (backups too), no longer opens. Erasing a customer calls it first.
- `sync_loader(url)`: what the ring asks, synchronously, for a key it has not seen (a row read that
  another process wrote): its own short connection, beside the event loop's, rare by design.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bot import crypto
from bot.db import encrypted
from bot.db.config import is_memory, is_sqlite, sqlite_file
from bot.db.models import DataKey
from bot.db.transactions import on_rollback


def _wrapped(row_key: str, master_key_id: str) -> crypto.WrappedKey:
    return crypto.WrappedKey(master_key_id, base64.b64decode(row_key))


async def ensure_keys(customer_ids: Iterable[int | str | None]) -> None:
    """Every customer of `customer_ids` has a data key in the ring: loaded (one query for all that are
    not cached) or made and stored in the caller's transaction."""
    given = {int(c) for c in customer_ids if c is not None}
    if not given:
        return
    ring = crypto.current()
    wanted = sorted(c for c in given if not ring.has_data_key(str(c)))
    if not wanted:
        return
    # two tasks making one key at once: one row wins (ignore_conflicts), both read it back
    found = await DataKey.filter(customer_id__in=wanted).values_list(
        "customer_id", "wrapped_key", "master_key_id"
    )
    for customer_id, wrapped_key, master_key_id in found:
        _load(ring, customer_id, wrapped_key, master_key_id)
    missing = sorted(set(wanted) - {row[0] for row in found})
    if not missing:
        return
    now = datetime.now(UTC)
    made = {customer_id: ring.new_data_key(str(customer_id)) for customer_id in missing}
    await DataKey.bulk_create(
        [
            DataKey(
                customer_id=customer_id,
                wrapped_key=base64.b64encode(wrapped.blob).decode(),
                master_key_id=wrapped.master_key_id,
                created_at=now,
            )
            for customer_id, (_, wrapped) in made.items()
        ],
        ignore_conflicts=True,  # another process made one meanwhile: theirs is read below
    )
    stored = await DataKey.filter(customer_id__in=missing).values_list(
        "customer_id", "wrapped_key", "master_key_id"
    )
    for customer_id, wrapped_key, master_key_id in stored:
        raw, wrapped = made[customer_id]
        if base64.b64decode(wrapped_key) == wrapped.blob:
            ring.add_data_key(str(customer_id), raw)
        else:
            _load(ring, customer_id, wrapped_key, master_key_id)
    on_rollback(lambda: _forget(ring, missing))


def _load(ring: crypto.KeyRing, customer_id: int, wrapped_key: str, master_key_id: str) -> None:
    """Cache one stored key; one that does not open (its master key is not configured) is reported and
    left out, not the batch's failure: that customer's values read as Unreadable naming the key."""
    try:
        ring.load_data_key(str(customer_id), _wrapped(wrapped_key, master_key_id))
    except crypto.CryptoError as exc:
        encrypted.report(exc)


def _forget(ring: crypto.KeyRing, customer_ids: Iterable[int]) -> None:
    for customer_id in customer_ids:
        ring.forget_data_key(str(customer_id))


async def destroy_data_key(customer_id: int) -> None:
    """Delete the customer's wrapped data key and forget it: every value of theirs reads as Unreadable
    naming the key from now on, in this process at once, everywhere once it is committed."""
    await DataKey.filter(customer_id=customer_id).delete()
    crypto.current().forget_data_key(str(customer_id))


# -- reading keys another process stored: synchronously, on a cache miss -----------------------------


_SELECT = "SELECT wrapped_key, master_key_id FROM data_key WHERE customer_id = "


def sync_loader(database_url: str) -> crypto.DataKeyLoader | None:
    """The ring's loader for this database (None for an in-memory SQLite database: this process made
    every key there is, and holds them)."""
    if is_sqlite(database_url):
        if is_memory(database_url):
            return None
        path = sqlite_file(database_url)
        assert path is not None
        return lambda owner: _sqlite_key(str(path), owner)
    return lambda owner: _postgres_key(database_url, owner)


def _owner_id(owner: str) -> int | None:
    return int(owner) if owner.isdigit() else None


def _sqlite_key(path: str, owner: str) -> crypto.WrappedKey | None:
    customer_id = _owner_id(owner)
    if customer_id is None:
        return None
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        row = connection.execute(_SELECT + "?", (customer_id,)).fetchone()
    except sqlite3.OperationalError:  # no data_key table: a database before 0009
        return None
    finally:
        connection.close()
    return None if row is None else _wrapped(row[0], row[1])


def _postgres_key(url: str, owner: str) -> crypto.WrappedKey | None:
    customer_id = _owner_id(owner)
    if customer_id is None:
        return None
    result: list[Any] = []
    failure: list[BaseException] = []

    def fetch() -> None:  # its own thread and loop: the caller may be on the event loop
        try:
            result.append(asyncio.run(_postgres_fetch(url, customer_id)))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=fetch, name="data-key-loader", daemon=True)
    thread.start()
    thread.join(30)
    if failure:
        raise crypto.MissingKey(f"the data key of {owner}", f"could not be read: {failure[0]!r}")
    row = result[0] if result else None
    return None if row is None else _wrapped(row[0], row[1])


async def _postgres_fetch(url: str, customer_id: int) -> Any:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1), timeout=10)
    try:
        return await connection.fetchrow(_SELECT + "$1", customer_id)
    finally:
        await connection.close()


encrypted.use_key_store(ensure_keys)
