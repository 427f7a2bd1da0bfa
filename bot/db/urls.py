"""What a database URL says about where its data lives, for the code outside bot/db that places files.

Only bot/db knows the URL forms: `bot chat` keeps its conversation in a SQLite file beside the shop's
database (or in data/ when that is PostgreSQL), and the simulator opens SQLite files of its own.
"""

from __future__ import annotations

from pathlib import Path

SQLITE = "sqlite://"
MEMORY = ":memory:"


def sqlite_url(path: Path | str) -> str:
    """The URL of a SQLite database in this file (or `MEMORY`)."""
    return f"{SQLITE}{path}"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for an in-memory SQLite database or another database."""
    if not url.startswith(SQLITE):
        return None
    path = url.removeprefix(SQLITE).split("?", 1)[0]
    return None if path == MEMORY else Path(path)
