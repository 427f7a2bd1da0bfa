"""What a deletion leaves on disk, removed: after an erasure the SQLite write-ahead log is checkpointed
and truncated, so no copy of an erased page stays in the -wal file.

The main file needs nothing here: every SQLite connection runs with `secure_delete=ON` (bot/db/config.py),
which overwrites deleted rows and freed pages with zeros as they go. PostgreSQL keeps dead tuples until
its (auto)vacuum reuses them; that is the database's own housekeeping, not a file this code can search.
"""

from __future__ import annotations

import logging

from tortoise import connections

from bot.db.config import CONNECTION

log = logging.getLogger(__name__)


async def checkpoint_wal() -> bool:
    """SQLite: copy the WAL into the database and truncate it to nothing. False when a reader kept it
    from finishing (the next checkpoint does it); PostgreSQL: nothing to do, True."""
    client = connections.get(CONNECTION)
    if client.capabilities.dialect != "sqlite":
        return True
    rows = await client.execute_query_dict("PRAGMA wal_checkpoint(TRUNCATE)")
    busy = bool(rows and rows[0].get("busy"))
    if busy:
        log.warning(
            "the WAL checkpoint after an erasure could not finish: a reader held it; it runs again later"
        )
    return not busy
