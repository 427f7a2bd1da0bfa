"""Throughput buckets in the database, for processes that share one business number (PostgreSQL).

Each bucket is one `pace_bucket` row: GCRA's theoretical arrival time (when the bucket is full again),
in seconds of the database's clock, so processes on different machines agree on "now". One statement
takes tokens from many buckets at once and says, for each, how far ahead its new arrival time is; the
caller (bot/whatsapp/pacing.py) works out each token's slot from that. Rows never lock for longer than
the statement, and the table is UNLOGGED (migration 0003), so a reservation costs one round trip and no
disk wait. bot/db/claims.py hands this store out on PostgreSQL only; SQLite's one process paces in memory.
"""

from __future__ import annotations

from collections.abc import Mapping

from tortoise import connections

from bot.db.config import CONNECTION

_RESERVE = """
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
INSERT INTO pace_bucket AS b (key, tat)
SELECT r.key, clock.now + r.span FROM unnest($1::text[], $2::float8[]) AS r(key, span), clock
ON CONFLICT (key) DO UPDATE
    SET tat = GREATEST(b.tat, (SELECT now FROM clock)) + (EXCLUDED.tat - (SELECT now FROM clock))
RETURNING b.key, b.tat - (SELECT now FROM clock) AS ahead
"""
"""Take `span` seconds of tokens from each bucket (count x interval): the new arrival time is the old
one, or now if that has passed, plus the span. EXCLUDED.tat carries now + span for the update."""

_HOLD = """
INSERT INTO pace_bucket AS b (key, tat) VALUES ($1, extract(epoch FROM clock_timestamp()) + $2)
ON CONFLICT (key) DO UPDATE SET tat = GREATEST(b.tat, EXCLUDED.tat)
"""

_SWEEP = "DELETE FROM pace_bucket WHERE tat < extract(epoch FROM clock_timestamp()) - $1"


class DatabaseBuckets:
    """The `BucketStore` of bot/whatsapp/pacing.py, on the shared PostgreSQL database."""

    async def reserve(self, spans: Mapping[str, float]) -> dict[str, float]:
        """Take tokens worth `spans[key]` seconds from each bucket; returns, per key, how many seconds
        from now its new arrival time is (the first token taken is free at that minus the span)."""
        if not spans:
            return {}
        keys = list(spans)
        _, rows = await connections.get(CONNECTION).execute_query(_RESERVE, [keys, [spans[k] for k in keys]])
        return {row["key"]: float(row["ahead"]) for row in rows}

    async def hold(self, key: str, seconds: float) -> None:
        """The bucket's arrival time is at least `seconds` from now (the far side said: too fast)."""
        await connections.get(CONNECTION).execute_query(_HOLD, [key, seconds])

    async def sweep(self, older_than: float) -> None:
        """Forget buckets full for more than `older_than` seconds (the same as no row)."""
        await connections.get(CONNECTION).execute_query(_SWEEP, [older_than])
