"""Hand-written SQL that runs on both databases: for grouped reports (bot/stats.py, the scrape-time
gauges) that the ORM cannot express, computed in the database, never row by row in Python; and a few
statements on the inbox's hot path, where building the ORM's query costs more than running it.

Queries are written with `?` placeholders; PostgreSQL gets `$1, $2 ...`. A datetime parameter is
passed as the database compares it: on SQLite as the text Tortoise stores (`YYYY-MM-DD HH:MM:SS[.f]+00:00`,
in UTC, which orders as the times do, so an index on the column still serves the range), on PostgreSQL
as the value. `as_datetime` reads a time back from either.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, cast
from zoneinfo import ZoneInfo

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from bot.db.config import CONNECTION
from bot.periods import offsets

_PLACEHOLDER = re.compile(r"\?")


def connection() -> BaseDBAsyncClient:
    client: BaseDBAsyncClient = connections.get(CONNECTION)
    return client


def on_sqlite() -> bool:
    return connection().capabilities.dialect == "sqlite"


def param(value: Any, sqlite: bool) -> Any:
    """A parameter as the database compares it (a datetime: text in UTC on SQLite)."""
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return utc.isoformat(sep=" ") if sqlite else utc
    return value


def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2 ...`."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


async def fetch(sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The rows of one SELECT, as dicts. Call with an already aggregated query: the rows are held."""
    client = connection()
    sqlite = client.capabilities.dialect == "sqlite"
    values = [param(value, sqlite) for value in params]
    return list(await client.execute_query_dict(sql if sqlite else numbered(sql), values))


def marks(count: int) -> str:
    """`?, ?, ...`: the placeholders of an IN list of `count` values."""
    return ", ".join("?" * count)


async def fetch_rows(sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
    """The rows of one SELECT as the driver gives them (indexed by position), not copied into dicts:
    for a hot path that reads many (bot/db/rows.py)."""
    client = connection()
    sqlite = client.capabilities.dialect == "sqlite"
    values = [param(value, sqlite) for value in params]
    _, found = await client.execute_query(sql if sqlite else numbered(sql), values)
    return cast("list[Sequence[Any]]", list(found))  # typed as dicts: sqlite3.Row, asyncpg's Record


async def execute(sql: str, params: Sequence[Any] = ()) -> None:
    """One statement that returns nothing (a hot path's UPDATE), in the caller's transaction if any;
    parameters as `fetch` passes them."""
    client = connection()
    sqlite = client.capabilities.dialect == "sqlite"
    await client.execute_query(sql if sqlite else numbered(sql), [param(value, sqlite) for value in params])


async def scalar(sql: str, params: Sequence[Any] = ()) -> Any:
    rows = await fetch(sql, params)
    return next(iter(rows[0].values())) if rows else None


def as_datetime(value: Any) -> datetime | None:
    """A time as either database returns it from a raw query (text on SQLite), in UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def seconds_between(later: str, earlier: str) -> str:
    """SQL for `later - earlier` in seconds (two column expressions)."""
    if on_sqlite():
        return f"((julianday({later}) - julianday({earlier})) * 86400.0)"
    return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"


def local_day(column: str, zone: ZoneInfo, start: datetime, end: datetime) -> tuple[str, list[object]]:
    """SQL giving `column`'s shop day as 'YYYY-MM-DD' text, and its parameters (for rows in [start,
    end)): PostgreSQL converts AT TIME ZONE; SQLite, which has no time zones, shifts each stretch
    between the zone's offset changes (bot/periods.offsets) by its own offset."""
    if not on_sqlite():
        return f"to_char(({column} AT TIME ZONE ?), 'YYYY-MM-DD')", [zone.key]
    pieces = offsets(start, end, zone)
    if len(pieces) == 1:
        return f"date({column}, '{pieces[0][1]:+d} minutes')", []
    sql = ["CASE"]
    params: list[object] = []
    for (_, minutes), (following, _) in pairwise(pieces):
        sql.append(f"WHEN {column} < ? THEN date({column}, '{minutes:+d} minutes')")
        params.append(following)
    sql.append(f"ELSE date({column}, '{pieces[-1][1]:+d} minutes') END")
    return " ".join(sql), params
