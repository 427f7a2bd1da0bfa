"""Database start-up and shut-down for sqlite:// and postgres:// URLs.

Every schema change is a Tortoise migration in bot/db/migrations/ (bot/db/schema.py applies and checks
them); generate_schemas is for tests only. `init_db` connects and either migrates (`bot db migrate`,
`bot serve --migrate`, the simulator's own databases) or checks that nothing is pending, so a command
never runs on a schema older or newer than its code.
"""

from __future__ import annotations

from tortoise import Tortoise, connections

from bot.db import sqlite
from bot.db.config import MODELS_MODULE, is_sqlite, tortoise_config, tortoise_url
from bot.db.process_turns import ProcessTurn
from bot.db.schema import MigrationReport, SchemaError, check, migrate

__all__ = [
    "MODELS_MODULE",
    "MigrationReport",
    "SchemaError",
    "close_db",
    "init_db",
    "is_sqlite",
    "ping",
    "share_file",
    "tortoise_url",
]


async def init_db(url: str, *, migrate_schema: bool = False) -> MigrationReport | None:
    """Connect; then apply pending migrations (`migrate_schema`), or raise SchemaError when the schema is
    not this code's (nothing is changed then, and the connection is closed again)."""
    await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
    connection = connections.get("default")
    try:
        if migrate_schema:
            return await migrate(connection)
        await check(connection)
    except BaseException:
        await close_db()
        raise
    return None


def share_file(turn: ProcessTurn) -> None:
    """Other processes write this SQLite file too (`bot serve --workers N`): take `turn` on it."""
    client = connections.get("default")
    if isinstance(client, sqlite.Client):
        client.share_file(turn)


async def close_db() -> None:
    await Tortoise.close_connections()


async def ping() -> bool:
    """True when the database answers a trivial query."""
    try:
        await connections.get("default").execute_query("SELECT 1")
    except Exception:
        return False
    return True
