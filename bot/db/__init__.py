"""Database start-up and shut-down for sqlite:// and postgres:// URLs."""

from __future__ import annotations

from pathlib import Path

from tortoise import Tortoise, connections

MODELS_MODULE = "bot.db.models"
# WAL lets readers run beside the one writer; synchronous=FULL keeps every commit on disk before the
# webhook answers 200 (group commit amortises the fsync over many messages).
_SQLITE_PRAGMAS = "journal_mode=WAL&synchronous=FULL&busy_timeout=5000"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite://")


def tortoise_url(url: str) -> str:
    """Add the SQLite pragmas and create the file's folder; other URLs pass through."""
    if not is_sqlite(url):
        return url.replace("postgresql://", "postgres://", 1)
    path = url.removeprefix("sqlite://").split("?", 1)[0]
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{_SQLITE_PRAGMAS}"


async def init_db(url: str, *, create_schema: bool = True) -> None:
    """Connect and create any missing tables (safe to run on every start)."""
    await Tortoise.init(
        db_url=tortoise_url(url), modules={"models": [MODELS_MODULE]}, _enable_global_fallback=True
    )
    if create_schema:
        await Tortoise.generate_schemas(safe=True)


async def close_db() -> None:
    await Tortoise.close_connections()


async def ping() -> bool:
    """True when the database answers a trivial query."""
    try:
        await connections.get("default").execute_query("SELECT 1")
    except Exception:
        return False
    return True
