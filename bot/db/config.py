"""Where the models and their migrations are, and the Tortoise URL and configuration for a database URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tortoise.backends.base.config_generator import expand_db_url

APP_LABEL = "models"
MODELS_MODULE = "bot.db.models"
MIGRATIONS_MODULE = "bot.db.migrations"
CONNECTION = "default"
MIGRATIONS_TABLE = "tortoise_migrations"
"""Where Tortoise records the migrations applied to a database (one row per migration)."""

# WAL lets readers run beside the one writer; synchronous=FULL keeps every commit on disk before the
# webhook answers 200 (group commit amortises the fsync over many messages). secure_delete=ON overwrites
# deleted rows and freed pages with zeros, so an erased customer's bytes do not linger in the file
# (bot/db/shred.py truncates the WAL after an erasure); some builds have it on by default, not all.
BUSY_TIMEOUT_MS = 5000
"""How long a SQLite statement waits for another connection's write lock before it fails."""
_SQLITE_PRAGMAS = f"journal_mode=WAL&synchronous=FULL&busy_timeout={BUSY_TIMEOUT_MS}&secure_delete=ON"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite://")


def is_memory(url: str) -> bool:
    return is_sqlite(url) and url.removeprefix("sqlite://").split("?", 1)[0] == ":memory:"


MEMORY = ":memory:"
"""The path of an in-memory SQLite database."""


def sqlite_url(path: Path | str) -> str:
    """The URL of a SQLite database in this file (or `MEMORY`): the simulator's and `bot chat`'s own."""
    return f"sqlite://{path}"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for an in-memory SQLite database or another database (`bot chat`
    keeps its conversation beside the shop's SQLite file, or in data/)."""
    if not is_sqlite(url) or is_memory(url):
        return None
    return Path(url.removeprefix("sqlite://").split("?", 1)[0])


def tortoise_url(url: str) -> str:
    """Add the SQLite pragmas and create the file's folder; other URLs pass through."""
    if not is_sqlite(url):
        return url.replace("postgresql://", "postgres://", 1)
    path = url.removeprefix("sqlite://").split("?", 1)[0]
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{_SQLITE_PRAGMAS}"


def apps_config() -> dict[str, dict[str, Any]]:
    """The one app, its models and its migrations package, as Tortoise's migration tools take them."""
    return {
        APP_LABEL: {
            "models": [MODELS_MODULE],
            "migrations": MIGRATIONS_MODULE,
            "default_connection": CONNECTION,
        }
    }


SQLITE_ENGINE = "bot.db.sqlite"
"""The SQLite engine: Tortoise's client with cheaper transactions (bot/db/sqlite.py)."""


def connection_config(url: str) -> str | dict[str, Any]:
    """Tortoise's connection for a database URL: SQLite's through `SQLITE_ENGINE`, others by URL."""
    full = tortoise_url(url)
    if not is_sqlite(url):
        return full
    config = expand_db_url(full)
    config["engine"] = SQLITE_ENGINE
    return config


def tortoise_config(url: str) -> dict[str, Any]:
    return {"connections": {CONNECTION: connection_config(url)}, "apps": apps_config()}
